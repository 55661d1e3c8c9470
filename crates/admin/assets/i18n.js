// Every string of the dashboard in English and Simplified Chinese. The choice is kept in
// localStorage; elements with data-i18n are translated in place, pages call I18N.t(key).
"use strict";
(function () {
  const S = {
    username: ["Username", "用户名"], password: ["Password", "密码"], login: ["Log in", "登录"],
    otherLanguage: ["简体中文", "English"], changePassword: ["Change password", "修改密码"],
    mustChange: ["You are using the default password. Choose a new one to continue.", "您正在使用默认密码，请设置新密码后继续。"],
    newPassword: ["New password", "新密码"], confirmPassword: ["Confirm password", "确认密码"], oldPassword: ["Old password", "旧密码"],
    save: ["Save", "保存"], saved: ["Saved", "已保存"], logout: ["Log out", "退出登录"],
    navOverview: ["Overview", "概览"], navClients: ["Clients", "客户端"], navSubscriptions: ["Subscriptions", "订阅"],
    navTopics: ["Topics", "主题"], navRetained: ["Retained", "保留消息"], navGateways: ["Gateways", "网关"],
    navWebsocket: ["WebSocket Client", "WebSocket 客户端"], navAdmins: ["Admins", "管理员"],
    navBanned: ["Banned", "黑名单"], banAs: ["Type", "类型"], banWho: ["Who", "对象"], banReason: ["Reason", "原因"],
    banBy: ["By", "操作者"], banUntil: ["Until", "截止时间"], banAdd: ["Ban", "加入黑名单"],
    navTrace: ["Log Trace", "日志追踪"], traceType: ["Type", "类型"], traceMatch: ["Client ID / topic / IP", "客户端 ID / 主题 / IP"],
    traceDuration: ["Duration", "时长"], traceStart: ["Start", "开始时间"], traceEnd: ["End", "结束时间"], traceCreate: ["Create", "创建"],
    traceHelp: ["Everything logged at debug level about the matching clients goes to the trace's file; the rest of the log keeps its level.",
      "匹配客户端在 debug 级别的所有日志都写入该追踪的文件，其余日志保持原有级别。"],
    payloadEncode: ["Payload encoding", "消息内容编码"], waiting: ["Waiting", "等待中"], stop: ["Stop", "停止"], download: ["Download", "下载"],
    minutes10: ["10 minutes", "10 分钟"], minutes30: ["30 minutes", "30 分钟"], hour1: ["1 hour", "1 小时"], hours6: ["6 hours", "6 小时"], day1: ["1 day", "1 天"],
    sessionExpired: ["Session expired, please log in again", "会话已过期，请重新登录"],
    tooManyLogins: ["Too many failed logins, try again in a minute", "登录失败次数过多，请一分钟后再试"],
    badLogin: ["Wrong username or password", "用户名或密码错误"], pwdMismatch: ["The passwords do not match", "两次输入的密码不一致"],
    days: ["d", "天"], hours: ["h", "时"], minutes: ["m", "分"], seconds: ["s", "秒"],
    connections: ["Connections", "连接数"], sessions: ["Sessions", "会话数"], messageRate: ["Message rate (per second)", "消息速率（每秒）"],
    received: ["Received", "接收"], sent: ["Sent", "发送"], dropped: ["Dropped", "丢弃"],
    node: ["Node", "节点"], version: ["Version", "版本"], uptime: ["Uptime", "运行时长"],
    page: ["Page", "第"], total: ["Total", "共"], searchClientId: ["Search client ID", "搜索客户端 ID"],
    protocol: ["Protocol", "协议"], all: ["All", "全部"], state: ["State", "状态"],
    connected: ["Connected", "已连接"], disconnected: ["Disconnected", "已断开"], connecting: ["Connecting", "连接中"],
    clientId: ["Client ID", "客户端 ID"], ipAddress: ["IP address", "IP 地址"], connectedAt: ["Connected at", "连接时间"],
    createdAt: ["Created at", "创建时间"], kick: ["Kick", "踢除"], noData: ["No data", "暂无数据"],
    confirmKick: ["Kick client", "确定踢除客户端"], confirmDelete: ["Delete it?", "确定删除？"], client: ["Client", "客户端"],
    topic: ["Topic", "主题"], topicFilter: ["Topic filter", "主题过滤器"], subscribe: ["Subscribe", "订阅"], unsubscribe: ["Unsubscribe", "取消订阅"],
    keepalive: ["Keepalive (s)", "心跳（秒）"], cleanStart: ["Clean start", "清除会话"], expiryInterval: ["Session expiry (s)", "会话过期（秒）"],
    inflight: ["Inflight", "飞行窗口"], mqueue: ["Queued messages", "队列消息"], mqueueDropped: ["Queue drops", "队列丢弃"],
    size: ["Size", "大小"], from: ["From", "来源"], publishedAt: ["Published at", "发布时间"], view: ["View", "查看"], delete: ["Delete", "删除"],
    name: ["Name", "名称"], status: ["Status", "状态"], listeners: ["Listeners", "监听器"],
    running: ["Running", "运行中"], stopped: ["Stopped", "已停止"], unloaded: ["Unloaded", "未加载"],
    enable: ["Enable", "启用"], disable: ["Disable", "停用"], enabled: ["Enabled", "已启用"],
    connect: ["Connect", "连接"], disconnect: ["Disconnect", "断开"], publish: ["Publish", "发布"], retain: ["Retain", "保留"],
    payload: ["Payload", "消息内容"], receivedMessages: ["Received messages", "已接收消息"],
    description: ["Description", "描述"], add: ["Add", "添加"], apiKeys: ["API keys", "API 密钥"],
    secretOnce: ["Copy the secret now: it is not shown again.", "请立即复制密钥：它不会再次显示。"],
  };
  const I18N = {
    lang: localStorage.getItem("sy_lang") === "zh" ? "zh" : "en",
    t(key) { const e = S[key]; return e ? e[this.lang === "zh" ? 1 : 0] : key; },
    set(lang) { this.lang = lang; localStorage.setItem("sy_lang", lang); },
    apply() {
      document.documentElement.lang = this.lang === "zh" ? "zh-CN" : "en";
      document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = this.t(el.dataset.i18n); });
    },
  };
  window.I18N = I18N;
})();

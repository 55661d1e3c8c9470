//! What an installed node relies on: systemd's readiness protocol (a datagram socket of this
//! test as `NOTIFY_SOCKET` hears READY=1 only once the ready file lists every listener, and
//! STOPPING=1 at shutdown), `switchyard ctl stop` (the pid file, a graceful exit), and the
//! Debian package that `scripts/package.sh` builds from the debug binary (contents, control
//! data, the systemd unit, the packaged configuration, the maintainer scripts).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{bin, config_toml, parse_ready_file, require_program, temp_dir, wait_child};
use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Kills the child if the test fails half-way.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("a notification in time");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn ctl_stop(config: &Path) -> Output {
    Command::new(bin())
        .arg("--config")
        .arg(config)
        .args(["ctl", "stop", "--timeout", "20"])
        .output()
        .unwrap()
}

#[test]
fn systemd_hears_ready_once_every_listener_is_up_and_ctl_stop_stops_the_node() {
    let dir = temp_dir("notify");
    let config = dir.join("switchyard.toml");
    fs::write(&config, config_toml(&dir, "")).unwrap();
    let ready = dir.join("ready.json");
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(common::READY_TIMEOUT)).unwrap();
    let log = fs::File::create(dir.join("broker.log")).unwrap();
    let child = Command::new(bin())
        .arg("--config")
        .arg(&config)
        .arg("--ready-file")
        .arg(&ready)
        .current_dir(&dir)
        .env("NOTIFY_SOCKET", &sock_path)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let mut child = Reap(child);
    let broker_log = || fs::read_to_string(dir.join("broker.log")).unwrap_or_default();

    let first = recv(&sock);
    // Read the moment READY=1 arrives: the ready file must already list every listener.
    let listeners = fs::read_to_string(&ready)
        .ok()
        .and_then(|t| parse_ready_file(&t))
        .unwrap_or_else(|| panic!("READY=1 before the ready file\n{}", broker_log()));
    assert!(first.lines().any(|l| l == "READY=1"), "{first:?}");
    for id in [
        "mqtt:tcp:default",
        "mqtt:ws:default",
        "mqttsn:udp:default",
        "coap:udp:default",
        "lwm2m:udp:default",
        "dashboard:http:default",
    ] {
        assert!(listeners.contains_key(id), "{id} not in {listeners:?}");
    }
    let pid_file = dir.join("data/switchyard.pid");
    assert_eq!(
        fs::read_to_string(&pid_file).unwrap().trim(),
        child.0.id().to_string()
    );

    let stopped = ctl_stop(&config);
    let said = String::from_utf8_lossy(&stopped.stdout);
    assert!(
        stopped.status.success() && said.contains("stopped"),
        "{said}{}\n{}",
        String::from_utf8_lossy(&stopped.stderr),
        broker_log()
    );
    let status = wait_child(&mut child.0, Duration::from_secs(5)).expect("the node exited");
    assert!(status.success(), "{status}\n{}", broker_log());
    assert_eq!(recv(&sock), "STOPPING=1");
    assert!(
        broker_log().contains("signal=\"SIGTERM\""),
        "{}",
        broker_log()
    );
    assert!(!pid_file.exists(), "the pid file is removed at exit");

    let again = ctl_stop(&config);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not running"),
        "{again:?}"
    );
}

/// Runs `prog args` and returns its stdout, failing the test with its stderr otherwise.
fn run(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn package_sh_builds_a_deb_of_the_debug_binary_with_config_unit_and_user() {
    if !(require_program("dpkg-deb") && require_program("python3")) {
        return;
    }
    let out = temp_dir("package");
    let built = Command::new("bash")
        .arg(root().join("scripts/package.sh"))
        .arg("--debug")
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_switchyard"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&built.stderr).into_owned();
    assert!(built.status.success(), "package.sh failed\n{report}");
    let stdout = String::from_utf8_lossy(&built.stdout);
    let deb = stdout.lines().last().expect("the .deb path").to_owned();
    assert!(
        deb.ends_with(".deb") && Path::new(&deb).exists(),
        "{stdout}"
    );

    // Contents, as `dpkg-deb -c` lists them.
    let contents = run("dpkg-deb", &["-c", &deb]);
    let has = |path: &str| contents.lines().any(|l| l.ends_with(&format!(" {path}")));
    for path in [
        "./usr/bin/switchyard",
        "./etc/switchyard/switchyard.toml",
        "./etc/switchyard/acl.toml",
        "./lib/systemd/system/switchyard.service",
        "./var/lib/switchyard/",
        "./var/log/switchyard/",
        "./usr/share/doc/switchyard/deploy.md",
    ] {
        assert!(has(path), "no {path} in\n{contents}");
    }
    let binary = contents
        .lines()
        .find(|l| l.ends_with(" ./usr/bin/switchyard"))
        .unwrap();
    assert!(binary.starts_with("-rwxr-xr-x root/root"), "{binary}");
    let mut shipped: Vec<String> = fs::read_dir(root().join("config/lwm2m_xml"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".xml"))
        .collect();
    shipped.sort();
    for name in &shipped {
        assert!(has(&format!("./etc/switchyard/lwm2m_xml/{name}")), "{name}");
    }

    // Control data, as `dpkg-deb -I` / `-f` give it.
    let info = run("dpkg-deb", &["-I", &deb]);
    for needle in [
        "Package: switchyard",
        "Depends: libc6 (>= 2.",
        "adduser",
        "postinst",
    ] {
        assert!(info.contains(needle), "no {needle:?} in\n{info}");
    }
    let version = run("dpkg-deb", &["-f", &deb, "Version"]);
    assert_eq!(version.trim(), env!("CARGO_PKG_VERSION"));

    // The files themselves.
    let x = out.join("root");
    run("dpkg-deb", &["-x", &deb, x.to_str().unwrap()]);
    run(
        "dpkg-deb",
        &["-e", &deb, x.join("DEBIAN").to_str().unwrap()],
    );
    let unit = fs::read_to_string(x.join("lib/systemd/system/switchyard.service")).unwrap();
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "User=switchyard",
        "Group=switchyard",
        "WorkingDirectory=/var/lib/switchyard",
        "ExecStart=/usr/bin/switchyard --config /etc/switchyard/switchyard.toml run",
        "KillSignal=SIGTERM",
        "LimitNOFILE=1048576",
        "Restart=on-failure",
        "WantedBy=multi-user.target",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "the unit lacks {line}\n{unit}"
        );
    }
    let config = fs::read_to_string(x.join("etc/switchyard/switchyard.toml")).unwrap();
    for line in [
        "data_dir = \"/var/lib/switchyard\"",
        "file = \"/etc/switchyard/acl.toml\"",
        "xml_dir = \"/etc/switchyard/lwm2m_xml\"",
        "path = \"/var/log/switchyard/switchyard.log\"",
    ] {
        assert!(config.lines().any(|l| l == line), "the config lacks {line}");
    }
    let conffiles = fs::read_to_string(x.join("DEBIAN/conffiles")).unwrap();
    assert_eq!(
        conffiles.lines().collect::<Vec<_>>(),
        [
            "/etc/switchyard/switchyard.toml",
            "/etc/switchyard/acl.toml"
        ]
    );
    let postinst = fs::read_to_string(x.join("DEBIAN/postinst")).unwrap();
    for needle in [
        "adduser --system",
        "install -d -o switchyard -g switchyard -m 0750 /var/lib/switchyard",
        "deb-systemd-helper enable switchyard.service",
    ] {
        assert!(postinst.contains(needle), "postinst lacks {needle:?}");
    }
    // The packaged binary runs and accepts the packaged configuration.
    let packaged = x.join("usr/bin/switchyard");
    let checked = run(
        packaged.to_str().unwrap(),
        &[
            "check-config",
            "--config",
            x.join("etc/switchyard/switchyard.toml").to_str().unwrap(),
        ],
    );
    assert!(checked.contains("configuration OK"), "{checked}");
    let _ = fs::remove_dir_all(&out);
}

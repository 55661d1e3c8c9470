SELECT
  jq('.a[] | .b?', payload) AS j, -- comment
  regex_replace(topic, '([a-z])', '\\1-') AS k
FROM "t/#"
WHERE not (qos in (0, 2)) and x <> 1
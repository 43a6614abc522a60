-- POST a body made from a one-line template whose every "{id}" becomes a name never sent
-- before: run tag, thread id, per-thread counter.
-- wrk -s register.lua URL -- TEMPLATE_FILE RUN_TAG
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
local common = require("common")
setup, done = common.setup, common.done

local template, prefix, n = nil, nil, 0
local headers = {["Content-Type"] = "application/json"}

function init(args)
  template = common.lines(args[1])[1]
  prefix = "r" .. args[2] .. "t" .. (thread_id or 0) .. "n"
end

function request()
  n = n + 1
  local body = template:gsub("{id}", prefix .. n)
  return wrk.format("POST", nil, headers, body)
end

-- POST to the URL's path, cycling over a file of bodies (one per line): refresh, login.
-- wrk -s post_lines.lua URL -- BODIES_FILE [CONTENT_TYPE]   (default application/json)
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
local common = require("common")
setup, done = common.setup, common.done

local requests, i = {}, 0

function init(args)
  local headers = {["Content-Type"] = args[2] or "application/json"}
  for _, body in ipairs(common.lines(args[1])) do
    requests[#requests + 1] = wrk.format("POST", nil, headers, body)
  end
  i = (thread_id or 0) * 7919
end

function request()
  i = i % #requests + 1
  return requests[i]
end

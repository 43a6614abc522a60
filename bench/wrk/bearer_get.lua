-- GET the URL's path with "Authorization: Bearer <token>", cycling over a file of tokens.
-- wrk -s bearer_get.lua URL -- TOKENS_FILE
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
local common = require("common")
setup, done = common.setup, common.done

local requests, i = {}, 0

function init(args)
  for _, token in ipairs(common.lines(args[1])) do
    requests[#requests + 1] = wrk.format("GET", nil, {["Authorization"] = "Bearer " .. token})
  end
  i = (thread_id or 0) * 7919
end

function request()
  i = i % #requests + 1
  return requests[i]
end

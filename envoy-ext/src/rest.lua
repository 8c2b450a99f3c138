-- REST that behaves like REST (issue #14). It runs before the gRPC-JSON
-- transcoder, so on requests it sees the REST call as the client sent it and
-- on responses the status and JSON body the transcoder made of the gRPC
-- answer. gRPC calls pass through untouched.
--
-- CREATE (rendered by envoy-ext from the google.api.http rules of the
-- descriptor set): the path of each collection's Create method; its 200
-- becomes 201 with a Location.
local CREATE = {
@CREATE@
}

-- Dynamic metadata namespace carrying what the request side learned to the
-- response side (a Lua global would be shared by every stream of a worker).
local NS = "envoy-poc.rest"

function envoy_on_request(request)
  local headers = request:headers()
  local content_type = headers:get("content-type") or ""
  if content_type:sub(1, 16) == "application/grpc" then
    return
  end
  local path = (headers:get(":path") or ""):gsub("%?.*$", "")
  local create = headers:get(":method") == "POST" and CREATE[path] ~= nil
  local meta = request:streamInfo():dynamicMetadata()
  meta:set(NS, "rest", true)
  if create then
    meta:set(NS, "collection", path)
  end
end

function envoy_on_response(response)
  local meta = response:streamInfo():dynamicMetadata():get(NS)
  if meta == nil or not meta.rest then
    return
  end
  local headers = response:headers()
  -- gRPC's own headers (grpc-status: 0 on every success, grpc-message, ...)
  -- mean nothing to a REST client; the status and JSON body say it all.
  local grpc = {}
  for name, _ in pairs(headers) do
    if name:sub(1, 5) == "grpc-" then
      grpc[#grpc + 1] = name
    end
  end
  for _, name in ipairs(grpc) do
    headers:remove(name)
  end
  if meta.collection == nil or headers:get(":status") ~= "200" then
    return
  end
  local body = response:body()
  -- The transcoder prints fields in field-number order and every resource's
  -- id is field 1, so a created resource's JSON starts with its id. Ids are
  -- server-made ([a-z0-9_]); anything else is left as the 200 it was.
  local id = body:getBytes(0, body:length()):match('^{"id":"([%w_%-]+)"')
  if id ~= nil then
    -- The headers object fetched before body() yielded is no longer valid.
    headers = response:headers()
    headers:replace(":status", "201")
    headers:replace("location", meta.collection .. "/" .. id)
  end
end

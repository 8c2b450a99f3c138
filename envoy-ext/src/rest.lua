-- REST that behaves like REST (issue #14). It runs before the gRPC-JSON
-- transcoder, so on requests it sees the REST call as the client sent it and
-- on responses the status and JSON body the transcoder made of the gRPC
-- answer. gRPC calls pass through untouched.
--
-- Everything API-dependent below is rendered by envoy-ext from the
-- descriptor set's google.api.http rules and message types; nothing is kept
-- by hand.

-- CREATE: the path of each collection's Create method; its 200 becomes 201
-- with a Location.
local CREATE = {
@CREATE@
}

-- BODIES: per HTTP method, the rules that take a JSON body: a Lua pattern of
-- the path, the body's kind, and the field path the body has in the gRPC
-- request ("" for body: "*").
local BODIES = {
@BODIES@
}

-- MESSAGES: per message, its fields by every JSON name the transcoder
-- accepts (lowerCamel and proto name): {proto name, kind, shape}. Kinds:
-- string, integer (a number, or a string of digits), number (a float, as a
-- number or a numeric string), bool, enum (a name or a number), object (any object), array, any, or
-- "msg:<full name>" for a message checked field by field; shape is "list",
-- "map" or nil.
local MESSAGES = {
@MESSAGES@
}

-- Dynamic metadata namespace carrying what the request side learned to the
-- response side and to the local-reply mappers (a Lua global would be
-- shared by every stream of a worker).
local NS = "@NAMESPACE@"

-- Deeper bodies are left to the transcoder, whose parser has its own limit;
-- the check must never run out of Lua stack.
local MAX_DEPTH = 64
-- A body with thousands of bad fields gets the first ones named.
local MAX_VIOLATIONS = 20

local ESCAPES = {
  ['"'] = '"', ["\\"] = "\\", ["/"] = "/",
  b = "\b", f = "\f", n = "\n", r = "\r", t = "\t",
}

local function skip_space(s, i)
  return s:find("[^ \t\r\n]", i) or #s + 1
end

local function utf8_char(code)
  if code < 0x80 then
    return string.char(code)
  elseif code < 0x800 then
    return string.char(0xC0 + math.floor(code / 0x40), 0x80 + code % 0x40)
  elseif code < 0x10000 then
    return string.char(0xE0 + math.floor(code / 0x1000),
      0x80 + math.floor(code / 0x40) % 0x40, 0x80 + code % 0x40)
  end
  return string.char(0xF0 + math.floor(code / 0x40000),
    0x80 + math.floor(code / 0x1000) % 0x40,
    0x80 + math.floor(code / 0x40) % 0x40, 0x80 + code % 0x40)
end

-- The lead bytes of UTF-8 sequences: the length and the range of the
-- second byte (which rules out overlong forms and surrogates).
local function utf8_lead(c)
  if c < 0x80 then
    return 1, 0x80, 0xBF
  elseif c >= 0xC2 and c <= 0xDF then
    return 2, 0x80, 0xBF
  elseif c == 0xE0 then
    return 3, 0xA0, 0xBF
  elseif c == 0xED then
    return 3, 0x80, 0x9F
  elseif c >= 0xE1 and c <= 0xEF then
    return 3, 0x80, 0xBF
  elseif c == 0xF0 then
    return 4, 0x90, 0xBF
  elseif c >= 0xF1 and c <= 0xF3 then
    return 4, 0x80, 0xBF
  elseif c == 0xF4 then
    return 4, 0x80, 0x8F
  end
  return nil
end

-- s with every byte that is not part of valid UTF-8 replaced by U+FFFD: a
-- client's field name, raw bytes included, is echoed in valid JSON.
local function valid_utf8(s)
  if not s:find("[\128-\255]") then
    return s
  end
  local out, i = {}, 1
  while i <= #s do
    local length, low, high = utf8_lead(s:byte(i))
    local ok = length ~= nil and i + length - 1 <= #s
    for k = 1, (length or 1) - 1 do
      if not ok then
        break
      end
      local byte = s:byte(i + k)
      if k == 1 then
        ok = byte >= low and byte <= high
      else
        ok = byte >= 0x80 and byte <= 0xBF
      end
    end
    if ok then
      out[#out + 1] = s:sub(i, i + length - 1)
      i = i + length
    else
      out[#out + 1] = "\239\191\189"
      i = i + 1
    end
  end
  return table.concat(out)
end

-- The JSON string starting at s[i] (a quote), decoded, and the index after
-- it; nil if it is malformed.
local function read_string(s, i)
  local parts, j = {}, i + 1
  while true do
    local k = s:find('["\\%z\1-\31]', j)
    if k == nil then
      return nil
    end
    parts[#parts + 1] = s:sub(j, k - 1)
    local c = s:sub(k, k)
    if c == '"' then
      return table.concat(parts), k + 1
    elseif c ~= "\\" then
      return nil
    end
    local escape = s:sub(k + 1, k + 1)
    if escape == "u" then
      local hex = s:match("^%x%x%x%x", k + 2)
      if hex == nil then
        return nil
      end
      local code = tonumber(hex, 16)
      j = k + 6
      if code >= 0xD800 and code <= 0xDFFF then
        -- A surrogate pair is one character; a lone surrogate is none.
        local low = s:match("^\\u([dD][c-fC-F]%x%x)", j)
        if code <= 0xDBFF and low ~= nil then
          code = 0x10000 + (code - 0xD800) * 0x400 + (tonumber(low, 16) - 0xDC00)
          j = j + 6
        else
          code = 0xFFFD
        end
      end
      parts[#parts + 1] = utf8_char(code)
    elseif ESCAPES[escape] ~= nil then
      parts[#parts + 1] = ESCAPES[escape]
      j = k + 2
    else
      return nil
    end
  end
end

-- The index after the JSON number at s[i], or nil.
local function number_end(s, i)
  local j = i
  if s:sub(j, j) == "-" then
    j = j + 1
  end
  local digits = s:match("^%d+", j)
  if digits == nil or (#digits > 1 and digits:sub(1, 1) == "0") then
    return nil
  end
  j = j + #digits
  local fraction = s:match("^%.%d+", j)
  if fraction ~= nil then
    j = j + #fraction
  end
  local exponent = s:match("^[eE][-+]?%d+", j)
  if exponent ~= nil then
    j = j + #exponent
  end
  return j
end

local JSON_TYPES = {
  ["{"] = "an object", ["["] = "an array", ['"'] = "a string",
  t = "a boolean", f = "a boolean", n = "null",
}

local function json_type(c)
  return JSON_TYPES[c] or "a number"
end

local EXPECTED = {
  string = "a string", number = "a number", bool = "a boolean",
  integer = "an integer (a number, or a string of digits)",
  enum = "an enum name or number", object = "an object", array = "an array",
}

-- Whether a JSON value whose first character is c, with string value str,
-- fits a scalar kind.
local function fits(kind, c, str)
  if kind == "any" then
    return true
  elseif kind == "string" then
    return c == '"'
  elseif kind == "bool" then
    return c == "t" or c == "f"
  elseif kind == "integer" then
    -- proto3 JSON takes integers as strings too (64-bit ones must be);
    -- a number's range and fraction are the transcoder's to judge.
    return JSON_TYPES[c] == nil or (c == '"' and str:find("^%-?%d+$") ~= nil)
  elseif kind == "number" then
    return JSON_TYPES[c] == nil or (c == '"' and (tonumber(str) ~= nil
      or str == "NaN" or str == "Infinity" or str == "-Infinity"))
  elseif kind == "enum" then
    return c == '"' or JSON_TYPES[c] == nil
  elseif kind == "object" then
    return c == "{"
  elseif kind == "array" then
    return c == "["
  end
  return c == "{" -- a message
end

local check_value

local function join(path, name)
  if path == "" then
    return name
  end
  return path .. "." .. name
end

-- After an object member or array element ending before s[i] (nil if that
-- was malformed): the index after the closing bracket and true, the index of
-- the next one and false, or nil if malformed.
local function next_item(s, i, close)
  if i == nil then
    return nil
  end
  i = skip_space(s, i)
  local c = s:sub(i, i)
  if c == close then
    return i + 1, true
  elseif c ~= "," then
    return nil
  end
  return skip_space(s, i + 1), false
end

-- Checks the object at s[i] ("{"): with fields, each member against its
-- field (unknown names are violations); with value_kind, every member's
-- value (a map). Returns the index after it, or nil if malformed.
local function check_object(s, i, fields, value_kind, path, out, depth)
  i = skip_space(s, i + 1)
  if s:sub(i, i) == "}" then
    return i + 1
  end
  while true do
    if s:sub(i, i) ~= '"' then
      return nil
    end
    local key
    key, i = read_string(s, i)
    if key == nil then
      return nil
    end
    i = skip_space(s, i)
    if s:sub(i, i) ~= ":" then
      return nil
    end
    i = skip_space(s, i + 1)
    if fields == nil then
      i = check_value(s, i, value_kind, nil, join(path, key), out, depth)
    else
      local field = fields[key]
      if field == nil then
        out[#out + 1] = { join(path, key), "unknown field" }
        i = check_value(s, i, "any", nil, "", out, depth)
      else
        i = check_value(s, i, field[2], field[3], join(path, field[1]), out, depth)
      end
    end
    local done
    i, done = next_item(s, i, "}")
    if i == nil or done then
      return i
    end
  end
end

-- Checks the array at s[i] ("["), each element against kind.
local function check_array(s, i, kind, path, out, depth)
  i = skip_space(s, i + 1)
  if s:sub(i, i) == "]" then
    return i + 1
  end
  local index = 0
  while true do
    i = check_value(s, i, kind, nil, path .. "[" .. index .. "]", out, depth)
    local done
    i, done = next_item(s, i, "]")
    if i == nil or done then
      return i
    end
    index = index + 1
  end
end

-- Checks the JSON value at s[i] against a field's kind and shape, adding
-- {field, description} to out for each violation. Returns the index after
-- the value, or nil if the JSON is malformed (the transcoder answers that).
check_value = function(s, i, kind, shape, path, out, depth)
  if depth > MAX_DEPTH then
    return nil
  end
  local c = s:sub(i, i)
  -- null is the default value of any field.
  if c == "n" then
    return s:match("^null()", i)
  end
  local expected = kind
  if shape == "list" then
    expected = "array"
  elseif shape == "map" then
    expected = "object"
  end
  local str, after
  if c == '"' then
    str, after = read_string(s, i)
    if str == nil then
      return nil
    end
  end
  if not fits(expected, c, str) then
    out[#out + 1] = { path, "expected " .. (EXPECTED[expected] or "an object")
      .. ", got " .. json_type(c) }
    kind, shape = "any", nil
  end
  if c == "{" then
    local fields = nil
    if shape == nil and kind:sub(1, 4) == "msg:" then
      fields = MESSAGES[kind:sub(5)]
    end
    local value_kind = "any"
    if shape == "map" then
      value_kind = kind
    end
    return check_object(s, i, fields, value_kind, path, out, depth + 1)
  elseif c == "[" then
    local element = "any"
    if shape == "list" then
      element = kind
    end
    return check_array(s, i, element, path, out, depth + 1)
  elseif c == '"' then
    return after
  elseif c == "t" then
    return s:match("^true()", i)
  elseif c == "f" then
    return s:match("^false()", i)
  end
  return number_end(s, i)
end

-- The violations of a REST body against its rule, or nil when it has none
-- or is not well-formed JSON.
local function body_violations(body, rule)
  local out = {}
  local i = check_value(body, skip_space(body, 1), rule[2], nil, rule[3], out, 0)
  if i == nil or skip_space(body, i) <= #body or #out == 0 then
    return nil
  end
  return out
end

-- Field names come from the client: escaped so the answer stays JSON.
local function json_string(s)
  return '"' .. valid_utf8(s):gsub('[%z\1-\31"\\\127]', function(c)
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function bad_request(out)
  local shown, items = {}, {}
  for n = 1, math.min(#out, MAX_VIOLATIONS) do
    local field, description = out[n][1], out[n][2]
    shown[n] = field .. ": " .. description
    items[n] = '{"field":' .. json_string(field) .. ',"description":'
      .. json_string(description) .. "}"
  end
  local more = ""
  if #out > MAX_VIOLATIONS then
    more = string.format(" (and %d more)", #out - MAX_VIOLATIONS)
  end
  return '{"code":3,"message":' .. json_string("invalid request body: "
    .. table.concat(shown, "; ") .. more) .. ',"details":[{"@type":'
    .. '"type.googleapis.com/google.rpc.BadRequest","field_violations":['
    .. table.concat(items, ",") .. "]}]}"
end

-- The body rule matching this method and path, if any.
local function body_rule(method, path)
  local rules = BODIES[method]
  if rules == nil then
    return nil
  end
  for _, rule in ipairs(rules) do
    if path:find(rule[1]) ~= nil then
      return rule
    end
  end
  return nil
end

-- Envoy runs these hooks only for REST calls with a method named in the
-- BODIES or CREATE tables (a matcher around the filter skips gRPC calls and
-- every other method), and removes gRPC's own headers from REST responses
-- with a filter of its own.
function envoy_on_request(request)
  local headers = request:headers()
  local method = headers:get(":method")
  local path = (headers:get(":path") or ""):gsub("%?.*$", "")
  local meta = request:streamInfo():dynamicMetadata()
  if method == "POST" and CREATE[path] ~= nil then
    meta:set(NS, "collection", path)
  end
  local rule = body_rule(method, path)
  if rule == nil then
    return
  end
  local body = request:body()
  if body == nil then
    return
  end
  local ok, out = pcall(body_violations, body:getBytes(0, body:length()), rule)
  if ok and out ~= nil then
    -- The local-reply mappers leave this body as it is (they give the
    -- gateway's other 400s theirs). The metadata object fetched before
    -- body() yielded is no longer valid.
    request:streamInfo():dynamicMetadata():set(NS, "@BAD_BODY@", true)
    request:respond({ [":status"] = "400", ["content-type"] = "application/json" },
      bad_request(out))
  end
end

function envoy_on_response(response)
  local headers = response:headers()
  if headers:get(":status") ~= "200" then
    return
  end
  local meta = response:streamInfo():dynamicMetadata():get(NS)
  if meta == nil or meta.collection == nil then
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

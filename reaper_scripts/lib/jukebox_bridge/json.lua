-- @description Jukebox Bridge library: minimal JSON encoder and decoder
-- @version 0.2.0
-- @author Jukebox Bridge
-- @noindex
--
-- Decodes what bridge/client.py writes (objects, arrays, strings with every JSON escape including
-- \uXXXX surrogate pairs, numbers, true/false/null) and encodes request fields. JSON null decodes to
-- nil inside objects and to json.null inside arrays (so array lengths stay right).
-- Lua 5.3 (REAPER 6) and 5.4 (REAPER 7).

local M = {}

M.null = setmetatable({}, { __tostring = function() return "null" end })
local ARRAY = {} -- metatable marking a table to encode as an array, even when empty

-- Marks t (default: a new empty table) to be encoded as a JSON array.
function M.array(t)
  return setmetatable(t or {}, ARRAY)
end

local ESCAPE = {
  ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
  ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t',
}
local UNESCAPE = {
  ['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f', n = '\n', r = '\r', t = '\t',
}
local HIGH_SURROGATE_FIRST, HIGH_SURROGATE_LAST = 0xD800, 0xDBFF
local LOW_SURROGATE_FIRST, LOW_SURROGATE_LAST = 0xDC00, 0xDFFF
local MAX_SAFE_INTEGER = 2 ^ 53

-- Encoding ------------------------------------------------------------------------------------

local encode_value

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESCAPE[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function encode_number(n)
  if math.type(n) == "integer" then
    return string.format("%d", n)
  end
  if n ~= n or n == math.huge or n == -math.huge then
    error("JSON cannot hold " .. tostring(n))
  end
  if n == math.floor(n) and math.abs(n) < MAX_SAFE_INTEGER then
    return string.format("%.1f", n)
  end
  for precision = 15, 17 do -- the shortest text that reads back as the same double
    local text = string.format("%." .. precision .. "g", n)
    if tonumber(text) == n then
      return text
    end
  end
  return string.format("%.17g", n)
end

local function is_array(t)
  local n = #t
  if getmetatable(t) == ARRAY then
    return true
  elseif n == 0 then
    return false
  end
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      return false
    end
  end
  return true
end

local function encode_table(t)
  local parts = {}
  if is_array(t) then
    for i = 1, #t do
      parts[i] = encode_value(t[i])
    end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then
      error("JSON object keys must be strings, got " .. type(k))
    end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  for i, k in ipairs(keys) do
    parts[i] = encode_string(k) .. ":" .. encode_value(t[k])
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

encode_value = function(v)
  local kind = type(v)
  if v == nil or v == M.null then
    return "null"
  elseif kind == "boolean" then
    return v and "true" or "false"
  elseif kind == "number" then
    return encode_number(v)
  elseif kind == "string" then
    return encode_string(v)
  elseif kind == "table" then
    return encode_table(v)
  end
  error("JSON cannot hold a " .. kind)
end

function M.encode(value)
  return encode_value(value)
end

-- Decoding ------------------------------------------------------------------------------------

local decode_value

local function fail(text, pos, what)
  error(string.format("JSON: %s at character %d", what, pos), 0)
end

local function skip_space(text, pos)
  return text:find("[^ \t\r\n]", pos) or #text + 1
end

local function read_hex4(text, pos)
  local hex = text:match("^%x%x%x%x", pos)
  if not hex then
    fail(text, pos, "bad \\u escape")
  end
  return tonumber(hex, 16)
end

local function decode_unicode_escape(text, pos) -- pos is just after "\u"
  local code = read_hex4(text, pos)
  pos = pos + 4
  if code >= HIGH_SURROGATE_FIRST and code <= HIGH_SURROGATE_LAST and text:sub(pos, pos + 1) == "\\u" then
    local low = read_hex4(text, pos + 2)
    if low >= LOW_SURROGATE_FIRST and low <= LOW_SURROGATE_LAST then
      code = 0x10000 + (code - HIGH_SURROGATE_FIRST) * 0x400 + (low - LOW_SURROGATE_FIRST)
      pos = pos + 6
    end
  end
  return utf8.char(code), pos
end

local function decode_string(text, pos) -- pos is at the opening quote
  local parts = {}
  pos = pos + 1
  while true do
    local stop = text:find('["\\]', pos)
    if not stop then
      fail(text, pos, "unterminated string")
    end
    parts[#parts + 1] = text:sub(pos, stop - 1)
    if text:sub(stop, stop) == '"' then
      return table.concat(parts), stop + 1
    end
    local escape = text:sub(stop + 1, stop + 1)
    if escape == "u" then
      parts[#parts + 1], pos = decode_unicode_escape(text, stop + 2)
    elseif UNESCAPE[escape] then
      parts[#parts + 1], pos = UNESCAPE[escape], stop + 2
    else
      fail(text, stop, "bad escape")
    end
  end
end

local function decode_number(text, pos)
  local number = text:match("^-?%d+%.?%d*[eE][-+]?%d+", pos) or text:match("^-?%d+%.?%d*", pos)
  local value = number and tonumber(number)
  if not value then
    fail(text, pos, "bad number")
  end
  return value, pos + #number
end

local function decode_array(text, pos)
  local result = {}
  pos = skip_space(text, pos + 1)
  if text:sub(pos, pos) == "]" then
    return result, pos + 1
  end
  while true do
    local value
    value, pos = decode_value(text, pos)
    result[#result + 1] = value == nil and M.null or value
    pos = skip_space(text, pos)
    local c = text:sub(pos, pos)
    if c == "]" then
      return result, pos + 1
    elseif c ~= "," then
      fail(text, pos, "expected ',' or ']'")
    end
    pos = skip_space(text, pos + 1)
  end
end

local function decode_object(text, pos)
  local result = {}
  pos = skip_space(text, pos + 1)
  if text:sub(pos, pos) == "}" then
    return result, pos + 1
  end
  while true do
    if text:sub(pos, pos) ~= '"' then
      fail(text, pos, "expected a string key")
    end
    local key
    key, pos = decode_string(text, pos)
    pos = skip_space(text, pos)
    if text:sub(pos, pos) ~= ":" then
      fail(text, pos, "expected ':'")
    end
    result[key], pos = decode_value(text, skip_space(text, pos + 1))
    pos = skip_space(text, pos)
    local c = text:sub(pos, pos)
    if c == "}" then
      return result, pos + 1
    elseif c ~= "," then
      fail(text, pos, "expected ',' or '}'")
    end
    pos = skip_space(text, pos + 1)
  end
end

local LITERALS = { ["true"] = true, ["false"] = false, ["null"] = M.null }

decode_value = function(text, pos)
  pos = skip_space(text, pos)
  local c = text:sub(pos, pos)
  if c == "{" then
    return decode_object(text, pos)
  elseif c == "[" then
    return decode_array(text, pos)
  elseif c == '"' then
    return decode_string(text, pos)
  elseif c == "-" or c:match("%d") then
    return decode_number(text, pos)
  end
  for word, value in pairs(LITERALS) do
    if text:sub(pos, pos + #word - 1) == word then
      if value == M.null then
        return nil, pos + #word
      end
      return value, pos + #word
    end
  end
  fail(text, pos, c == "" and "unexpected end" or "unexpected character '" .. c .. "'")
end

-- Decodes one JSON document; raises "JSON: ..." on malformed input.
function M.decode(text)
  local value, pos = decode_value(text, 1)
  pos = skip_space(text, pos)
  if pos <= #text then
    fail(text, pos, "trailing characters")
  end
  return value
end

-- Like decode, but returns nil and the message instead of raising.
function M.try_decode(text)
  local ok, value = pcall(M.decode, text)
  if ok then
    return value
  end
  return nil, value
end

return M

-- @description Jukebox Bridge library: settings as a declarative table, stored with SetExtState
-- @version 0.2.0
-- @author Jukebox Bridge
-- @noindex
--
-- Each setting names its kind, default and range. Every read and write goes through get/set, which
-- parse and check the stored text, so a hand-edited reaper-extstate.ini can never break an action.

local M = {}

M.SECTION = "JukeboxBridge"
local PERSIST = true

M.SPECS = {
  { key = "host", label = "Engine host", kind = "string", default = "127.0.0.1" },
  { key = "port", label = "Engine port", kind = "integer", default = 9130, min = 1, max = 65535 },
  { key = "client", label = "Client command (empty: auto)", kind = "string", default = "" },
  { key = "artist", label = "Artist (empty: model default)", kind = "string", default = "" },
  { key = "genre", label = "Genre (empty: model default)", kind = "string", default = "" },
  { key = "temperature", label = "Temperature (0: engine's)", kind = "number", default = 0, min = 0, max = 2 },
  { key = "adherence", label = "Adherence to the region, 0-1 (-1: engine's)", kind = "number", default = -1,
    min = -1, max = 1 },
  { key = "takes", label = "Takes (1-8)", kind = "integer", default = 1, min = 1, max = 8 },
  { key = "quality", label = "Quality (draft/full)", kind = "choice", default = "full",
    choices = { "draft", "full" } },
  { key = "seconds", label = "Seconds to generate", kind = "number", default = 10, min = 0.5, max = 300 },
  { key = "bars", label = "Bars to generate (0: use seconds)", kind = "number", default = 0, min = 0, max = 512 },
  { key = "target_track", label = "Target track (source/new/selected)", kind = "choice", default = "source",
    choices = { "source", "new", "selected" } },
  { key = "jobs_dir", label = "Job files folder (empty: in REAPER's resource folder)", kind = "string", default = "" },
}

local BY_KEY = {}
for _, spec in ipairs(M.SPECS) do
  BY_KEY[spec.key] = spec
end

function M.spec(key)
  local spec = BY_KEY[key]
  if not spec then
    error("unknown Jukebox Bridge setting '" .. tostring(key) .. "'")
  end
  return spec
end

local function range_text(spec)
  if spec.kind == "choice" then
    return "one of " .. table.concat(spec.choices, ", ")
  end
  local what = spec.kind == "integer" and "a whole number" or "a number"
  return string.format("%s from %s to %s", what, tostring(spec.min), tostring(spec.max))
end

local function parse_number(spec, text)
  local value = tonumber(text)
  if value and spec.kind == "integer" then
    value = math.tointeger(value)
  end
  if not value or value ~= value or value < spec.min or value > spec.max then
    return nil
  end
  return value
end

local function parse_choice(spec, text)
  local wanted = text:lower()
  for _, choice in ipairs(spec.choices) do
    if choice == wanted then
      return choice
    end
  end
  return nil
end

-- Text (as typed or stored) -> value; nil and a message naming the setting and its range if invalid.
function M.parse(key, text)
  local spec = M.spec(key)
  text = tostring(text or ""):match("^%s*(.-)%s*$")
  local value
  if spec.kind == "string" then
    value = text
  elseif spec.kind == "choice" then
    value = parse_choice(spec, text)
  else
    value = parse_number(spec, text)
  end
  if value == nil then
    return nil, string.format("%s must be %s; got '%s'.", spec.label, range_text(spec), text)
  end
  return value
end

function M.format(key, value)
  local spec = M.spec(key)
  if spec.kind == "number" and math.type(value) == "float" and value == math.floor(value) then
    return string.format("%d", value)
  end
  return tostring(value)
end

function M.get(key)
  local spec = M.spec(key)
  if not reaper.HasExtState(M.SECTION, key) then
    return spec.default
  end
  local value = M.parse(key, reaper.GetExtState(M.SECTION, key))
  if value == nil then
    return spec.default
  end
  return value
end

-- Stores a value after checking it; returns true, or nil and the message.
function M.set(key, value)
  local parsed, message = M.parse(key, M.format(key, value))
  if parsed == nil then
    return nil, message
  end
  reaper.SetExtState(M.SECTION, key, M.format(key, parsed), PERSIST)
  return true
end

-- All settings as one table {key = value}.
function M.all()
  local values = {}
  for _, spec in ipairs(M.SPECS) do
    values[spec.key] = M.get(spec.key)
  end
  return values
end

return M

-- A fake `reaper` (and `gfx`) for running the Jukebox Bridge ReaScripts under a plain Lua 5.4.
--
-- It holds a small project model (tracks, items, takes, sources, time selection, edit cursor, tempo,
-- sample rate, ext state), records every API call in order, and fails loudly on any API function it
-- does not implement, so a misspelt or invented API name cannot pass. Only real ReaScript function
-- names are implemented. ExecProcess is recorded and handed to `fake.on_exec` (tests play the
-- client's status file, or the end-to-end test really runs the command); defer callbacks are queued
-- and run by `fake:run_deferred()`.

local Fake = {}
Fake.__index = Fake

-- Calls that change the project (string setters count only when their `set` argument is true).
local MUTATING = {
  SetMediaItemInfo_Value = true, SetMediaItemTakeInfo_Value = true, AddMediaItemToTrack = true,
  AddTakeToMediaItem = true, SetMediaItemTake_Source = true, PCM_Source_Destroy = true,
  SetActiveTake = true, InsertTrackAtIndex = true, Undo_BeginBlock2 = true, Undo_EndBlock2 = true,
  SetMediaItemPosition = true, SetMediaItemLength = true, SetEditCurPos = true,
}
local STRING_SETTERS = { GetSetMediaTrackInfo_String = 4, GetSetMediaItemTakeInfo_String = 4 }

local function pack(...)
  return { n = select("#", ...), ... }
end

-- WAV header -> seconds, sample rate, channels (nil if not a readable RIFF/WAVE file).
local function wav_info(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local data = f:read(1 << 20) or ""
  f:close()
  if data:sub(1, 4) ~= "RIFF" or data:sub(9, 12) ~= "WAVE" then
    return nil
  end
  local pos, channels, rate, align = 13, nil, nil, nil
  while pos + 8 <= #data do
    local id, size = data:sub(pos, pos + 3), string.unpack("<I4", data, pos + 4)
    if id == "fmt " then
      channels, rate = string.unpack("<I2", data, pos + 10), string.unpack("<I4", data, pos + 12)
      align = string.unpack("<I2", data, pos + 20)
    elseif id == "data" and align then
      return (size // align) / rate, rate, channels
    end
    pos = pos + 8 + size + (size % 2)
  end
  return nil
end

function Fake.new()
  local self = setmetatable({
    calls = {}, tracks = {}, ext = {}, files = {}, deferred = {}, atexit = {},
    messages = {}, inputs = {}, execs = {}, gfx_calls = {},
    now = 1000.0, cursor = 0.0, loop_start = 0.0, loop_end = 0.0, tempo = 120.0,
    project_srate = 48000, project_srate_use = 1, device_srate = "44100",
    os_name = "Other", resource_path = "/tmp/fake-reaper-resources",
    window_closed = false, exec_result = "",
  }, Fake)
  self.on_exec = function() end
  self.reaper = self:_make_reaper()
  self.gfx = self:_make_gfx()
  return self
end

-- Model ---------------------------------------------------------------------------------------

function Fake:add_file(path, info)
  self.files[path] = info or {}
  return path
end

function Fake:add_track(name)
  local track = { kind = "MediaTrack*", name = name or "", selected = false, items = {} }
  self.tracks[#self.tracks + 1] = track
  return track
end

function Fake:add_source(spec)
  local source = {
    kind = "PCM_source*", path = spec.path or "", type = spec.type or "WAVE", length = spec.length or 0,
    srate = spec.srate or 44100, channels = spec.channels or 2,
  }
  if spec.path and not spec.missing then
    self:add_file(spec.path, { length = source.length, srate = source.srate, channels = source.channels })
  end
  return source
end

function Fake:add_item(track, spec)
  local item = {
    kind = "MediaItem*", track = track, position = spec.position or 0, length = spec.length or 0,
    selected = spec.selected or false, takes = {}, active = 1, loop = spec.loop or 0,
  }
  for _, t in ipairs(spec.takes or {}) do
    item.takes[#item.takes + 1] = {
      kind = "MediaItem_Take*", item = item, source = t.source, startoffs = t.startoffs or 0,
      playrate = t.playrate or 1, ppitch = t.ppitch or 1, name = t.name or "", midi = t.midi or false,
    }
  end
  track.items[#track.items + 1] = item
  return item
end

function Fake:all_items()
  local items = {}
  for _, track in ipairs(self.tracks) do
    for _, item in ipairs(track.items) do
      items[#items + 1] = item
    end
  end
  return items
end

local function index_of(list, value)
  for i, v in ipairs(list) do
    if v == value then
      return i
    end
  end
  return nil
end

function Fake:_exists(ptr)
  if ptr == nil then
    return false
  elseif ptr.kind == "MediaTrack*" then
    return index_of(self.tracks, ptr) ~= nil
  elseif ptr.kind == "MediaItem*" then
    return index_of(self:all_items(), ptr) ~= nil
  end
  return false
end

function Fake:_file_exists(path)
  if self.files[path] then
    return true
  end
  local f = io.open(path, "rb")
  if f then
    f:close()
    return true
  end
  return false
end

-- Recording -----------------------------------------------------------------------------------

function Fake:calls_to(name)
  local found = {}
  for _, call in ipairs(self.calls) do
    if call.name == name then
      found[#found + 1] = call
    end
  end
  return found
end

function Fake:mutations()
  local found = {}
  for _, call in ipairs(self.calls) do
    local set_arg = STRING_SETTERS[call.name]
    if MUTATING[call.name] or (set_arg and call.args[set_arg]) then
      found[#found + 1] = call
    end
  end
  return found
end

-- Runs the queued defer callbacks once (each may queue the next); returns how many ran.
function Fake:run_deferred(advance)
  self.now = self.now + (advance or 1 / 30)
  local queue = self.deferred
  self.deferred = {}
  for _, fn in ipairs(queue) do
    fn()
  end
  return #queue
end

-- Runs defer rounds until nothing is queued (or max rounds); `between` runs before each round.
function Fake:run_until_idle(max_rounds, between, advance)
  for round = 1, max_rounds or 1000 do
    if #self.deferred == 0 then
      return round - 1
    end
    if between then
      between(round)
    end
    self:run_deferred(advance)
  end
  error("the defer loop was still running after " .. tostring(max_rounds) .. " rounds")
end

-- API -----------------------------------------------------------------------------------------

function Fake:_api()
  local fake = self
  local api = {}

  local function selected_items()
    local list = {}
    for _, item in ipairs(fake:all_items()) do
      if item.selected then
        list[#list + 1] = item
      end
    end
    return list
  end

  local function selected_tracks()
    local list = {}
    for _, track in ipairs(fake.tracks) do
      if track.selected then
        list[#list + 1] = track
      end
    end
    return list
  end

  local ITEM_FIELDS = { D_POSITION = "position", D_LENGTH = "length", B_LOOPSRC = "loop" }
  local TAKE_FIELDS = { D_STARTOFFS = "startoffs", D_PLAYRATE = "playrate", B_PPITCH = "ppitch" }

  local function field(map, key)
    local name = map[key]
    if not name then
      error("fake reaper: unsupported parameter " .. tostring(key), 3)
    end
    return name
  end

  -- selection and items
  function api.CountSelectedMediaItems(_) return #selected_items() end
  function api.GetSelectedMediaItem(_, i) return selected_items()[i + 1] end
  function api.CountSelectedTracks(_) return #selected_tracks() end
  function api.GetSelectedTrack(_, i) return selected_tracks()[i + 1] end
  function api.CountTracks(_) return #fake.tracks end
  function api.GetTrack(_, i) return fake.tracks[i + 1] end
  function api.CountTrackMediaItems(track) return #track.items end
  function api.GetTrackMediaItem(track, i) return track.items[i + 1] end
  function api.GetMediaItem_Track(item) return item.track end
  function api.GetActiveTake(item) return item.takes[item.active] end
  function api.CountTakes(item) return #item.takes end
  function api.GetTake(item, i) return item.takes[i + 1] end
  function api.TakeIsMIDI(take) return take.midi or (take.source ~= nil and take.source.type == "MIDI") end
  function api.GetMediaItemTake_Source(take) return take.source end
  function api.GetTakeName(take) return take.name end
  function api.GetMediaItemInfo_Value(item, key) return item[field(ITEM_FIELDS, key)] end
  function api.SetMediaItemInfo_Value(item, key, value) item[field(ITEM_FIELDS, key)] = value; return true end
  function api.GetMediaItemTakeInfo_Value(take, key) return take[field(TAKE_FIELDS, key)] end
  function api.SetMediaItemTakeInfo_Value(take, key, value) take[field(TAKE_FIELDS, key)] = value; return true end
  function api.GetMediaTrackInfo_Value(track, key)
    if key ~= "IP_TRACKNUMBER" then
      error("fake reaper: unsupported track parameter " .. tostring(key), 2)
    end
    return index_of(fake.tracks, track) + 0.0
  end
  function api.GetSetMediaTrackInfo_String(track, key, value, set)
    assert(key == "P_NAME", "fake reaper: unsupported track string " .. tostring(key))
    if set then track.name = value end
    return true, track.name
  end
  function api.GetSetMediaItemTakeInfo_String(take, key, value, set)
    assert(key == "P_NAME", "fake reaper: unsupported take string " .. tostring(key))
    if set then take.name = value end
    return true, take.name
  end

  -- sources
  function api.GetMediaSourceType(source, _) return source.type end
  function api.GetMediaSourceFileName(source, _) return source.path end
  function api.GetMediaSourceSampleRate(source) return source.srate end
  function api.GetMediaSourceNumChannels(source) return source.channels end
  function api.GetMediaSourceLength(source) return source.length, false end
  function api.PCM_Source_CreateFromFile(path)
    local info = fake.files[path] or {}
    local seconds, rate, channels = wav_info(path)
    return {
      kind = "PCM_source*", path = path, type = "WAVE", length = seconds or info.length or 0,
      srate = rate or info.srate or 0, channels = channels or info.channels or 0,
    }
  end
  function api.PCM_Source_Destroy(source) source.destroyed = true end

  -- editing
  function api.AddMediaItemToTrack(track)
    local item = { kind = "MediaItem*", track = track, position = 0, length = 0, takes = {}, active = 1, loop = 0,
      selected = false }
    track.items[#track.items + 1] = item
    return item
  end
  function api.AddTakeToMediaItem(item)
    local take = { kind = "MediaItem_Take*", item = item, startoffs = 0, playrate = 1, ppitch = 1, name = "" }
    item.takes[#item.takes + 1] = take
    return take
  end
  function api.SetMediaItemTake_Source(take, source) take.source = source; return true end
  function api.SetActiveTake(take) take.item.active = index_of(take.item.takes, take) end
  function api.InsertTrackAtIndex(index, _)
    table.insert(fake.tracks, index + 1, { kind = "MediaTrack*", name = "", selected = false, items = {} })
  end
  function api.ValidatePtr2(_, ptr, type_name) return ptr ~= nil and ptr.kind == type_name and fake:_exists(ptr) end
  function api.UpdateArrange() end
  function api.PreventUIRefresh(_) end
  function api.Undo_BeginBlock2(_) end
  function api.Undo_EndBlock2(_, _, _) end

  -- project
  function api.GetCursorPosition() return fake.cursor end
  function api.GetSet_LoopTimeRange2(_, is_set, _, from, to, _)
    if is_set then fake.loop_start, fake.loop_end = from, to end
    return fake.loop_start, fake.loop_end
  end
  function api.Master_GetTempo() return fake.tempo end
  function api.GetSetProjectInfo(_, key, _, is_set)
    assert(not is_set, "fake reaper: the scripts must not change project settings")
    if key == "PROJECT_SRATE" then return fake.project_srate + 0.0 end
    if key == "PROJECT_SRATE_USE" then return fake.project_srate_use + 0.0 end
    error("fake reaper: unsupported project info " .. tostring(key), 2)
  end
  function api.GetAudioDeviceInfo(key, _)
    if key == "SRATE" and fake.device_srate then return true, fake.device_srate end
    return false, ""
  end
  function api.format_timestr(seconds, _)
    return string.format("%d:%06.3f", math.floor(seconds / 60), seconds % 60)
  end

  -- ext state
  local function ext_key(section, key) return section .. "/" .. key end
  function api.GetExtState(section, key) return (fake.ext[ext_key(section, key)] or {}).value or "" end
  function api.HasExtState(section, key) return fake.ext[ext_key(section, key)] ~= nil end
  function api.SetExtState(section, key, value, persist)
    fake.ext[ext_key(section, key)] = { value = value, persist = persist }
  end
  function api.DeleteExtState(section, key, _) fake.ext[ext_key(section, key)] = nil end

  -- processes, files, time, UI
  function api.ExecProcess(command, timeout)
    fake.execs[#fake.execs + 1] = { command = command, timeout = timeout }
    fake.on_exec(command, timeout)
    return fake.exec_result
  end
  function api.file_exists(path) return fake:_file_exists(path) end
  function api.RecursiveCreateDirectory(path, _)
    os.execute("mkdir -p '" .. path:gsub("'", "'\\''") .. "'")
    return 1
  end
  function api.GetOS() return fake.os_name end
  function api.GetResourcePath() return fake.resource_path end
  function api.GetAppVersion() return "7.27/linux-x86_64" end
  function api.time_precise() return fake.now end
  function api.defer(fn) fake.deferred[#fake.deferred + 1] = fn end
  function api.atexit(fn) fake.atexit[#fake.atexit + 1] = fn end
  function api.ShowMessageBox(text, title, kind)
    fake.messages[#fake.messages + 1] = { text = text, title = title, kind = kind }
    return 1
  end
  function api.ShowConsoleMsg(_) end
  function api.GetUserInputs(title, count, captions, values)
    local answer = table.remove(fake.inputs, 1)
    if answer == nil then
      error("fake reaper: GetUserInputs was called but the test queued no answer", 2)
    end
    if type(answer) == "function" then
      return answer(title, count, captions, values)
    end
    return answer[1], answer[2]
  end
  return api
end

function Fake:_make_reaper()
  local api = self:_api()
  local fake = self
  return setmetatable({}, {
    __index = function(_, name)
      local fn = api[name]
      if not fn then
        error("fake reaper: reaper." .. tostring(name) .. " is not implemented (is it a real API function?)", 2)
      end
      return function(...)
        fake.calls[#fake.calls + 1] = { name = name, args = pack(...) }
        return fn(...)
      end
    end,
    __newindex = function() error("fake reaper: scripts must not assign into the reaper table", 2) end,
  })
end

function Fake:_make_gfx()
  local fake = self
  local g = { x = 0, y = 0, w = 460, h = 200 }
  local function record(name)
    return function(...)
      fake.gfx_calls[#fake.gfx_calls + 1] = { name = name, args = pack(...) }
    end
  end
  for _, name in ipairs({ "set", "rect", "drawstr", "setfont", "update", "quit" }) do
    g[name] = record(name)
  end
  g.init = function(...)
    record("init")(...)
    fake.window_open = true
  end
  g.getchar = function()
    return fake.window_closed and -1 or 0
  end
  return g
end

return Fake

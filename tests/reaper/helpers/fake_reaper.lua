-- A fake `reaper` (and `gfx`) for running the Jukebox Bridge ReaScripts under a plain Lua 5.3/5.4.
--
-- It holds a small model of REAPER: project tabs (each with tracks, items, takes, sources, time
-- selection, edit cursor, a tempo/time-signature map, sample rate, project ext state), process-wide ext
-- state, and the scripts that run (actions, deferred loops, atexit handlers). It records every API call
-- in order and fails loudly on any API function it does not implement, so a misspelt or invented API
-- name cannot pass. Only real ReaScript function names are implemented.
--
-- Where REAPER behaves in a way that hurts, the fake does the same:
-- - `proj` 0 and the calls without a project (InsertTrackAtIndex, GetCursorPosition, ...) act on the
--   project tab that is active at the time of the call, so a script that did not capture its project
--   puts things in whatever tab the user switched to (`fake:switch_project`);
-- - an error inside a deferred callback stops that script: its other callbacks are dropped and its
--   atexit handlers run (the error is then raised from run_deferred unless `expect_script_errors`);
-- - PreventUIRefresh and undo blocks are counted: `ui_refresh_depth` and each project's `undo_depth`
--   show a block left open;
-- - starting a script that is still running (it has deferred callbacks) brings up REAPER's "script is
--   already running" prompt (`fake.prompts`) instead of a second instance;
-- - `fail_on[name] = "message"` makes that API function raise, as REAPER does on a bad argument.
-- ExecProcess is recorded and handed to `fake.on_exec` (tests play the client's status file, or the
-- end-to-end test really runs the command).

local Fake = {}

-- Calls that change a project (string setters count only when their `set` argument is true).
local MUTATING = {
  SetMediaItemInfo_Value = true, SetMediaItemTakeInfo_Value = true, AddMediaItemToTrack = true,
  AddTakeToMediaItem = true, SetMediaItemTake_Source = true, PCM_Source_Destroy = true,
  SetActiveTake = true, InsertTrackAtIndex = true, InsertTrackInProject = true, Undo_BeginBlock2 = true,
  Undo_EndBlock2 = true, SetMediaItemPosition = true, SetMediaItemLength = true, SetEditCurPos = true,
  DeleteTrackMediaItem = true,
}
local STRING_SETTERS = { GetSetMediaTrackInfo_String = 4, GetSetMediaItemTakeInfo_String = 4,
  GetSetMediaItemInfo_String = 4 }
-- Fields of the active project that tests read and write as fake.<field>.
local PROJECT_FIELDS = { tracks = true, cursor = true, loop_start = true, loop_end = true, tempo = true,
  num = true, den = true, markers = true, project_srate = true, project_srate_use = true }

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

local guid_counter = 0
local function new_guid()
  guid_counter = guid_counter + 1
  return string.format("{%08X-0000-4000-8000-%012X}", guid_counter, guid_counter)
end

local function new_project(name)
  return {
    kind = "ReaProject*", name = name or "", tracks = {}, projext = {}, undo_depth = 0, undo_points = {},
    cursor = 0.0, loop_start = 0.0, loop_end = 0.0, tempo = 120.0, num = 4, den = 4, markers = {},
    project_srate = 48000, project_srate_use = 1,
  }
end

Fake.__index = function(self, key)
  if PROJECT_FIELDS[key] then
    return rawget(self, "active")[key]
  end
  return Fake[key]
end
Fake.__newindex = function(self, key, value)
  if PROJECT_FIELDS[key] then
    rawget(self, "active")[key] = value
  else
    rawset(self, key, value)
  end
end

function Fake.new()
  local first = new_project("Song.RPP")
  local self = setmetatable({
    projects = { first }, active = first,
    calls = {}, ext = {}, files = {}, deferred = {}, atexit = {}, prompts = {}, script_errors = {},
    messages = {}, inputs = {}, execs = {}, gfx_calls = {}, scripts = {}, command_ids = {}, fail_on = {},
    now = 1000.0, device_srate = "44100", ui_refresh_depth = 0, current_script = nil,
    os_name = "Other", resource_path = "/tmp/fake-reaper-resources", app_version = "7.27/linux-x86_64",
    window_closed = false, exec_result = "", expect_script_errors = false,
  }, Fake)
  self.on_exec = function() end
  self.script_loader = function(path) dofile(path) end
  self.reaper = self:_make_reaper()
  self.gfx = self:_make_gfx()
  return self
end

-- Model ---------------------------------------------------------------------------------------

function Fake:add_project(name)
  local p = new_project(name)
  self.projects[#self.projects + 1] = p
  return p
end

-- The user clicks another project tab.
function Fake:switch_project(p)
  self.active = p
end

function Fake:add_file(path, info)
  self.files[path] = info or {}
  return path
end

function Fake:add_track(name, project)
  project = project or self.active
  local track = { kind = "MediaTrack*", name = name or "", selected = false, items = {}, project = project,
    guid = new_guid() }
  project.tracks[#project.tracks + 1] = track
  return track
end

function Fake:add_source(spec)
  local source = {
    kind = "PCM_source*", path = spec.path or "", type = spec.type or "WAVE", length = spec.length or 0,
    srate = spec.srate or 44100, channels = spec.channels or 2, parent = spec.parent,
    section = spec.section, -- {offset, length, reversed} for a SECTION source
  }
  if spec.path and spec.path ~= "" and not spec.missing then
    self:add_file(spec.path, { length = source.length, srate = source.srate, channels = source.channels })
  end
  return source
end

-- A section of `parent` (REAPER's "Section" item property, or a reversed take).
function Fake:add_section(parent, offset, length, reversed)
  return self:add_source({ type = "SECTION", parent = parent, length = length, srate = parent.srate,
    channels = parent.channels, section = { offset = offset, length = length, reversed = reversed or false } })
end

function Fake:add_item(track, spec)
  local item = {
    kind = "MediaItem*", track = track, position = spec.position or 0, length = spec.length or 0,
    selected = spec.selected or false, takes = {}, active = 1, loop = spec.loop or 0, guid = new_guid(),
  }
  for _, t in ipairs(spec.takes or {}) do
    item.takes[#item.takes + 1] = {
      kind = "MediaItem_Take*", item = item, source = t.source, startoffs = t.startoffs or 0,
      playrate = t.playrate or 1, ppitch = t.ppitch or 1, pitch = t.pitch or 0, name = t.name or "",
      midi = t.midi or false, stretch_markers = t.stretch_markers or 0, envelopes = t.envelopes or {},
    }
  end
  track.items[#track.items + 1] = item
  return item
end

function Fake:all_items(project)
  local items = {}
  for _, track in ipairs((project or self.active).tracks) do
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

function Fake:_project_of(proj)
  if proj == 0 or proj == nil then
    return self.active
  end
  assert(type(proj) == "table" and proj.kind == "ReaProject*", "fake reaper: not a project: " .. tostring(proj))
  assert(index_of(self.projects, proj), "fake reaper: a closed project was used")
  return proj
end

function Fake:_exists(project, ptr)
  if ptr == nil then
    return false
  elseif ptr.kind == "MediaTrack*" then
    return index_of(project.tracks, ptr) ~= nil
  elseif ptr.kind == "MediaItem*" then
    return index_of(self:all_items(project), ptr) ~= nil
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

-- The tempo map: the project's base tempo and signature from time 0, then `markers`
-- ({time, bpm, num, den}, each on a bar line of the segment before). BPM counts quarter notes.
function Fake:_segments(project)
  local list = { { time = 0.0, bpm = project.tempo, num = project.num, den = project.den } }
  local markers = {}
  for _, m in ipairs(project.markers) do
    markers[#markers + 1] = m
  end
  table.sort(markers, function(a, b) return a.time < b.time end)
  for _, m in ipairs(markers) do
    local last = list[#list]
    list[#list + 1] = { time = m.time, bpm = m.bpm or last.bpm, num = m.num or last.num, den = m.den or last.den }
  end
  local measures = 0
  for i, s in ipairs(list) do
    s.bar = s.num * (4 / s.den) * 60 / s.bpm -- seconds per bar
    s.measures = measures
    if list[i + 1] then
      measures = measures + (list[i + 1].time - s.time) / s.bar
    end
  end
  return list
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

-- Scripts -------------------------------------------------------------------------------------

function Fake:is_running(path)
  for _, entry in ipairs(self.deferred) do
    if entry.script == path then
      return true
    end
  end
  return false
end

-- The script is done: no callback of it is queued (REAPER then runs its atexit handlers).
function Fake:_maybe_finished(path)
  if path and not self:is_running(path) then
    local handlers = self.atexit[path] or {}
    self.atexit[path] = nil
    for _, fn in ipairs(handlers) do
      local previous = self.current_script
      self.current_script = path
      fn()
      self.current_script = previous
    end
  end
end

function Fake:_script_failed(path, err)
  self.script_errors[#self.script_errors + 1] = { script = path, error = tostring(err) }
  local kept = {}
  for _, entry in ipairs(self.deferred) do
    if entry.script ~= path then
      kept[#kept + 1] = entry
    end
  end
  self.deferred = kept
  self:_maybe_finished(path)
  if not self.expect_script_errors then
    error("script error in " .. tostring(path) .. ": " .. tostring(err), 0)
  end
end

-- Runs a script file as REAPER does when its action is triggered (script_loader gives it its own
-- Lua state in the harness).
function Fake:run_script(path)
  if self:is_running(path) then
    self.prompts[#self.prompts + 1] = { script = path, text = "script is already running" }
    return
  end
  local previous = self.current_script
  self.current_script = path
  local ok, err = pcall(self.script_loader, path)
  self.current_script = previous
  if not ok then
    self:_script_failed(path, err)
    return
  end
  self:_maybe_finished(path)
end

-- The user (or REAPER quitting) terminates a running script: its callbacks stop, atexit runs.
function Fake:terminate(path)
  local kept = {}
  for _, entry in ipairs(self.deferred) do
    if entry.script ~= path then
      kept[#kept + 1] = entry
    end
  end
  self.deferred = kept
  self:_maybe_finished(path)
end

-- Runs the queued defer callbacks once (each may queue the next); returns how many ran.
function Fake:run_deferred(advance)
  self.now = self.now + (advance or 1 / 30)
  local queue = self.deferred
  self.deferred = {}
  local finished = {}
  for _, entry in ipairs(queue) do
    local previous = self.current_script
    self.current_script = entry.script
    local ok, err = pcall(entry.fn)
    self.current_script = previous
    if not ok then
      self:_script_failed(entry.script, err)
    else
      finished[entry.script] = true
    end
  end
  for script in pairs(finished) do
    self:_maybe_finished(script)
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
  local P = function(proj) return fake:_project_of(proj) end

  local function selected_items(project)
    local list = {}
    for _, item in ipairs(fake:all_items(project)) do
      if item.selected then
        list[#list + 1] = item
      end
    end
    return list
  end

  local function selected_tracks(project)
    local list = {}
    for _, track in ipairs(project.tracks) do
      if track.selected then
        list[#list + 1] = track
      end
    end
    return list
  end

  local ITEM_FIELDS = { D_POSITION = "position", D_LENGTH = "length", B_LOOPSRC = "loop" }
  local TAKE_FIELDS = { D_STARTOFFS = "startoffs", D_PLAYRATE = "playrate", B_PPITCH = "ppitch", D_PITCH = "pitch" }

  local function field(map, key)
    local name = map[key]
    if not name then
      error("fake reaper: unsupported parameter " .. tostring(key), 3)
    end
    return name
  end

  -- projects
  function api.EnumProjects(idx, _)
    if idx == -1 then
      return fake.active, fake.active.name
    end
    local p = fake.projects[idx + 1]
    return p, p and p.name or ""
  end
  function api.GetProjExtState(proj, section, key)
    local value = P(proj).projext[section .. "/" .. key]
    return value and 1 or 0, value or ""
  end
  function api.SetProjExtState(proj, section, key, value)
    P(proj).projext[section .. "/" .. key] = value
    return 1
  end

  -- selection and items
  function api.CountSelectedMediaItems(proj) return #selected_items(P(proj)) end
  function api.GetSelectedMediaItem(proj, i) return selected_items(P(proj))[i + 1] end
  function api.CountSelectedTracks(proj) return #selected_tracks(P(proj)) end
  function api.GetSelectedTrack(proj, i) return selected_tracks(P(proj))[i + 1] end
  function api.CountTracks(proj) return #P(proj).tracks end
  function api.GetTrack(proj, i) return P(proj).tracks[i + 1] end
  function api.CountMediaItems(proj) return #fake:all_items(P(proj)) end
  function api.GetMediaItem(proj, i) return fake:all_items(P(proj))[i + 1] end
  function api.GetTrackGUID(track) return track.guid end
  function api.CountTrackMediaItems(track) return #track.items end
  function api.GetTrackMediaItem(track, i) return track.items[i + 1] end
  function api.GetMediaItem_Track(item) return item.track end
  function api.GetActiveTake(item) return item.takes[item.active] end
  function api.CountTakes(item) return #item.takes end
  function api.GetTake(item, i) return item.takes[i + 1] end
  function api.TakeIsMIDI(take) return take.midi or (take.source ~= nil and take.source.type == "MIDI") end
  function api.GetMediaItemTake_Source(take) return take.source end
  function api.GetTakeName(take) return take.name end
  function api.GetTakeNumStretchMarkers(take) return take.stretch_markers or 0 end
  function api.GetTakeEnvelopeByName(take, name)
    local points = (take.envelopes or {})[name]
    if points == nil then
      return nil
    end
    return { kind = "TrackEnvelope*", points = points }
  end
  function api.CountEnvelopePoints(env) return env.points end
  function api.GetMediaItemInfo_Value(item, key) return item[field(ITEM_FIELDS, key)] end
  function api.SetMediaItemInfo_Value(item, key, value) item[field(ITEM_FIELDS, key)] = value; return true end
  function api.GetMediaItemTakeInfo_Value(take, key) return take[field(TAKE_FIELDS, key)] end
  function api.SetMediaItemTakeInfo_Value(take, key, value) take[field(TAKE_FIELDS, key)] = value; return true end
  function api.GetMediaTrackInfo_Value(track, key)
    if key ~= "IP_TRACKNUMBER" then
      error("fake reaper: unsupported track parameter " .. tostring(key), 2)
    end
    return index_of(track.project.tracks, track) + 0.0
  end
  function api.GetSetMediaTrackInfo_String(track, key, value, set)
    assert(key == "P_NAME", "fake reaper: unsupported track string " .. tostring(key))
    if set then track.name = value end
    return true, track.name
  end
  function api.GetSetMediaItemInfo_String(item, key, value, set)
    assert(key == "GUID", "fake reaper: unsupported item string " .. tostring(key))
    assert(not set, "fake reaper: the scripts must not change an item's GUID")
    return true, item.guid
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
  function api.GetMediaSourceParent(source) return source.parent end
  function api.PCM_Source_GetSectionInfo(source)
    local s = source.section
    if not s then
      return false, 0, 0, false
    end
    return true, s.offset, s.length, s.reversed
  end
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
      selected = false, guid = new_guid() }
    track.items[#track.items + 1] = item
    return item
  end
  function api.DeleteTrackMediaItem(track, item)
    local i = index_of(track.items, item)
    if i then table.remove(track.items, i) end
    return i ~= nil
  end
  function api.AddTakeToMediaItem(item)
    local take = { kind = "MediaItem_Take*", item = item, startoffs = 0, playrate = 1, ppitch = 1, pitch = 0,
      name = "", stretch_markers = 0, envelopes = {} }
    item.takes[#item.takes + 1] = take
    return take
  end
  function api.SetMediaItemTake_Source(take, source) take.source = source; return true end
  function api.SetActiveTake(take) take.item.active = index_of(take.item.takes, take) end
  local function insert_track(project, index)
    table.insert(project.tracks, index + 1, { kind = "MediaTrack*", name = "", selected = false, items = {},
      project = project, guid = new_guid() })
  end
  function api.InsertTrackAtIndex(index, _) insert_track(fake.active, index) end -- the ACTIVE project only
  function api.InsertTrackInProject(proj, index, _) insert_track(P(proj), index) end
  function api.ValidatePtr2(proj, ptr, type_name)
    return ptr ~= nil and ptr.kind == type_name and fake:_exists(P(proj), ptr)
  end
  function api.UpdateArrange() end
  function api.PreventUIRefresh(delta) fake.ui_refresh_depth = fake.ui_refresh_depth + delta end
  function api.Undo_BeginBlock2(proj)
    local p = P(proj)
    p.undo_depth = p.undo_depth + 1
  end
  function api.Undo_EndBlock2(proj, label, flags)
    local p = P(proj)
    assert(p.undo_depth > 0, "fake reaper: Undo_EndBlock2 without Undo_BeginBlock2 in this project")
    p.undo_depth = p.undo_depth - 1
    p.undo_points[#p.undo_points + 1] = { label = label, flags = flags }
  end

  -- project state
  function api.GetCursorPosition() return fake.active.cursor end -- the ACTIVE project only
  function api.GetCursorPositionEx(proj) return P(proj).cursor end
  function api.GetSet_LoopTimeRange2(proj, is_set, _, from, to, _)
    local p = P(proj)
    if is_set then p.loop_start, p.loop_end = from, to end
    return p.loop_start, p.loop_end
  end
  function api.Master_GetTempo() return fake.active.tempo end -- the ACTIVE project, at its start only
  function api.TimeMap_GetTimeSigAtTime(proj, time)
    local seg
    for _, s in ipairs(fake:_segments(P(proj))) do
      if s.time <= time + 1e-9 then seg = s end
    end
    return seg.num, seg.den, seg.bpm + 0.0
  end
  function api.TimeMap2_timeToBeats(proj, tpos)
    local seg
    for _, s in ipairs(fake:_segments(P(proj))) do
      if s.time <= tpos + 1e-9 then seg = s end
    end
    local bars = (tpos - seg.time) / seg.bar
    local whole = math.floor(bars + 1e-9)
    local measures = math.floor(seg.measures + whole + 1e-9)
    local beats = (bars - whole) * seg.num
    return beats, measures, seg.num, measures * seg.num + beats, seg.den
  end
  function api.TimeMap2_beatsToTime(proj, tpos, measures)
    assert(measures ~= nil, "fake reaper: TimeMap2_beatsToTime is modelled with measuresIn only")
    local seg
    for _, s in ipairs(fake:_segments(P(proj))) do
      if s.measures <= measures + 1e-9 then seg = s end
    end
    return seg.time + (measures - seg.measures) * seg.bar + tpos * seg.bar / seg.num
  end
  function api.GetSetProjectInfo(proj, key, _, is_set)
    assert(not is_set, "fake reaper: the scripts must not change project settings")
    local p = P(proj)
    if key == "PROJECT_SRATE" then return p.project_srate + 0.0 end
    if key == "PROJECT_SRATE_USE" then return p.project_srate_use + 0.0 end
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

  -- scripts and actions
  function api.AddRemoveReaScript(add, section, path, _)
    assert(add and section == 0, "fake reaper: only registering main-section scripts is modelled")
    if not fake.command_ids[path] then
      fake.scripts[#fake.scripts + 1] = path
      fake.command_ids[path] = 50000 + #fake.scripts
    end
    return fake.command_ids[path]
  end
  function api.Main_OnCommand(command, _)
    local path = fake.scripts[command - 50000]
    assert(path, "fake reaper: unknown command " .. tostring(command))
    fake:run_script(path)
  end
  function api.APIExists(name) return fake.missing_api == nil or not fake.missing_api[name] end

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
  function api.GetAppVersion() return fake.app_version end
  function api.time_precise() return fake.now end
  function api.defer(fn) fake.deferred[#fake.deferred + 1] = { fn = fn, script = fake.current_script } end
  function api.atexit(fn)
    local script = fake.current_script
    fake.atexit[script] = fake.atexit[script] or {}
    table.insert(fake.atexit[script], fn)
  end
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
      if not fn or (fake.missing_api and fake.missing_api[name]) then
        error("fake reaper: reaper." .. tostring(name) .. " is not implemented (is it a real API function?)", 2)
      end
      return function(...)
        fake.calls[#fake.calls + 1] = { name = name, args = pack(...) }
        if fake.fail_on[name] then
          error(fake.fail_on[name], 2)
        end
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
  for _, name in ipairs({ "set", "rect", "drawstr", "setfont", "update" }) do
    g[name] = record(name)
  end
  g.init = function(...)
    record("init")(...)
    fake.window_open = true
  end
  g.quit = function(...)
    record("quit")(...)
    fake.window_open = false
  end
  g.getchar = function()
    return fake.window_closed and -1 or 0
  end
  return g
end

return Fake

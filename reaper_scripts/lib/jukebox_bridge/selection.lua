-- @description Jukebox Bridge library: read the selected items, time selection and project context
-- @version 0.2.0
-- @author Jukebox Bridge
-- @noindex
--
-- A region is what the engine needs from one item: the source file, where the item starts in it
-- (the take's D_STARTOFFS, plus the offset of a section source), how much of it plays (item length x
-- D_PLAYRATE, in source seconds) and where it sits on the timeline. Every call takes the project the
-- action captured when it started (never 0, "whatever tab is active now"). Every problem is
-- reported, nothing is changed in the project.

local M = {}

local EPSILON = 1e-9 -- seconds; REAPER's float noise on offsets and lengths
local FALLBACK_SAMPLE_RATE = 44100
local MAX_SECTION_DEPTH = 16
local GLUE = "glue it first (Item: Glue items) so that what plays is what is sent"
local AUDIO_EXTENSIONS = { wav = true, wave = true, aif = true, aiff = true, flac = true, ogg = true, mp3 = true }
local PLAYBACK_ENVELOPES = { "Playrate", "Pitch" } -- take envelopes that change what plays

local function take_label(item, take)
  local name = take and reaper.GetTakeName(take) or ""
  local track = reaper.GetMediaItem_Track(item)
  local number = math.floor(reaper.GetMediaTrackInfo_Value(track, "IP_TRACKNUMBER"))
  if name == "" then
    name = "(unnamed item)"
  end
  return string.format('"%s" on track %d', name, number)
end

local function extension(path)
  return (path:match("%.([%w]+)$") or ""):lower()
end

local function source_problem(source, path)
  if path == "" then
    return "has no source file (it is offline or in-project media)"
  elseif not reaper.file_exists(path) then
    return "has a missing source file: " .. path
  elseif not AUDIO_EXTENSIONS[extension(path)] then
    return "is a ." .. extension(path) .. " file; the engine reads WAV, AIFF, FLAC, OGG and MP3 (glue it first)"
  elseif reaper.GetMediaSourceSampleRate(source) <= 0 or reaper.GetMediaSourceLength(source) <= 0 then
    return "has an offline source (REAPER cannot read " .. path .. ")"
  end
  return nil
end

-- The file a take plays, through any section sources (Item properties > Section): the root source,
-- the offset of the section in it and the section's length (nil: to the file's end). A reversed
-- section cannot be sent as a region.
local function resolve_source(source)
  local offset, limit = 0, nil
  for _ = 1, MAX_SECTION_DEPTH do
    local is_section, offs, len, reversed = reaper.PCM_Source_GetSectionInfo(source)
    if not is_section then
      return { root = source, offset = offset, limit = limit }
    end
    if reversed then
      return nil, "plays its source reversed; " .. GLUE
    end
    local parent = reaper.GetMediaSourceParent(source)
    if not parent then
      return nil, "plays a section of a source REAPER cannot name; " .. GLUE
    end
    -- the take plays from `offset` into this section: what is left of it bounds the take
    if len and len > 0 then
      limit = limit and math.min(limit, len - offset) or (len - offset)
    end
    offset = offset + offs
    source = parent
  end
  return nil, "plays a section nested too deeply; " .. GLUE
end

local function playback_problem(take)
  if reaper.GetTakeNumStretchMarkers(take) > 0 then
    return "has stretch markers; " .. GLUE
  end
  for _, name in ipairs(PLAYBACK_ENVELOPES) do
    local envelope = reaper.GetTakeEnvelopeByName(take, name)
    if envelope and reaper.CountEnvelopePoints(envelope) > 0 then
      return "has a " .. name:lower() .. " envelope; " .. GLUE
    end
  end
  return nil
end

-- The take's resolved source ({root, offset, limit}), or nil and a sentence.
local function take_source(take)
  if not take then
    return nil, "is an empty item"
  elseif reaper.TakeIsMIDI(take) then
    return nil, "is a MIDI item; Jukebox Bridge works on audio items"
  end
  local source = reaper.GetMediaItemTake_Source(take)
  if not source then
    return nil, "has no source"
  end
  local problem = playback_problem(take)
  if problem then
    return nil, problem
  end
  local resolved
  resolved, problem = resolve_source(source)
  if not resolved then
    return nil, problem
  end
  problem = source_problem(resolved.root, reaper.GetMediaSourceFileName(resolved.root, ""))
  if problem then
    return nil, problem
  end
  return resolved
end

local function span_problem(region, source_length, limit)
  if region.start < -EPSILON then
    return "starts before the beginning of its source; trim or glue it first"
  elseif limit and region.section_start + region.length > limit + EPSILON then
    return "plays past the end of its section (looped?); trim or glue it first"
  elseif region.start + region.length > source_length + EPSILON then
    return "plays past the end of its source (looped?); trim or glue it first"
  elseif region.length <= EPSILON then
    return "has no length"
  end
  return nil
end

local function item_guid(item)
  local _, guid = reaper.GetSetMediaItemInfo_String(item, "GUID", "", false)
  return guid
end

-- One item -> region, or nil and a sentence saying what is wrong with it.
function M.read_item(item)
  local take = reaper.GetActiveTake(item)
  local resolved, problem = take_source(take)
  if not resolved then
    return nil, take_label(item, take) .. " " .. problem
  end
  local root = resolved.root
  local playrate = reaper.GetMediaItemTakeInfo_Value(take, "D_PLAYRATE")
  local item_length = reaper.GetMediaItemInfo_Value(item, "D_LENGTH")
  local section_start = reaper.GetMediaItemTakeInfo_Value(take, "D_STARTOFFS")
  local track = reaper.GetMediaItem_Track(item)
  local region = {
    item = item, take = take, track = track,
    item_guid = item_guid(item), track_guid = reaper.GetTrackGUID(track),
    label = take_label(item, take),
    source = reaper.GetMediaSourceFileName(root, ""),
    section_start = section_start,
    start = resolved.offset + section_start,
    length = item_length * playrate,
    position = reaper.GetMediaItemInfo_Value(item, "D_POSITION"),
    item_length = item_length,
    playrate = playrate,
    preserve_pitch = reaper.GetMediaItemTakeInfo_Value(take, "B_PPITCH"),
    pitch = reaper.GetMediaItemTakeInfo_Value(take, "D_PITCH"),
    channels = math.tointeger(reaper.GetMediaSourceNumChannels(root)) or 2,
  }
  problem = span_problem(region, (reaper.GetMediaSourceLength(root)), resolved.limit)
  if problem then
    return nil, region.label .. " " .. problem
  end
  region.start = math.max(region.start, 0) -- -1e-12 noise only; span_problem rejected real negatives
  return region
end

-- The part of a region inside [from, to) on the timeline, or nil and a sentence.
function M.narrow(region, from, to)
  local first = math.max(from, region.position)
  local last = math.min(to, region.position + region.item_length)
  if last - first <= EPSILON then
    return nil, region.label .. " lies outside the time selection"
  end
  local narrowed = {}
  for k, v in pairs(region) do
    narrowed[k] = v
  end
  narrowed.start = region.start + (first - region.position) * region.playrate
  narrowed.length = (last - first) * region.playrate
  narrowed.position = first
  narrowed.item_length = last - first
  return narrowed
end

-- Regions of items, or nil and one message listing every problem.
function M.regions_of(items)
  local regions, problems = {}, {}
  for _, item in ipairs(items) do
    local region, problem = M.read_item(item)
    regions[#regions + 1] = region
    problems[#problems + 1] = problem
  end
  if #problems > 0 then
    return nil, table.concat(problems, "\n")
  end
  return regions
end

function M.selected_items(proj)
  local items = {}
  for i = 0, reaper.CountSelectedMediaItems(proj) - 1 do
    items[#items + 1] = reaper.GetSelectedMediaItem(proj, i)
  end
  return items
end

function M.first_selected_track(proj)
  if reaper.CountSelectedTracks(proj) > 0 then
    return reaper.GetSelectedTrack(proj, 0)
  end
  return nil
end

-- Items on the selected tracks that overlap [from, to).
function M.items_on_selected_tracks(proj, from, to)
  local items = {}
  for t = 0, reaper.CountSelectedTracks(proj) - 1 do
    local track = reaper.GetSelectedTrack(proj, t)
    for i = 0, reaper.CountTrackMediaItems(track) - 1 do
      local item = reaper.GetTrackMediaItem(track, i)
      local position = reaper.GetMediaItemInfo_Value(item, "D_POSITION")
      local length = reaper.GetMediaItemInfo_Value(item, "D_LENGTH")
      if position < to - EPSILON and position + length > from + EPSILON then
        items[#items + 1] = item
      end
    end
  end
  return items
end

-- The time selection as start, end; nil when there is none.
function M.time_selection(proj)
  local from, to = reaper.GetSet_LoopTimeRange2(proj, false, false, 0, 0, false)
  if to - from > EPSILON then
    return from, to
  end
  return nil
end

local function sample_rate(proj)
  if reaper.GetSetProjectInfo(proj, "PROJECT_SRATE_USE", 0, false) == 1 then
    local rate = reaper.GetSetProjectInfo(proj, "PROJECT_SRATE", 0, false)
    if rate > 0 then
      return math.floor(rate + 0.5)
    end
  end
  local ok, device_rate = reaper.GetAudioDeviceInfo("SRATE", "")
  device_rate = ok and tonumber(device_rate)
  if device_rate and device_rate > 0 then
    return math.floor(device_rate + 0.5)
  end
  return FALLBACK_SAMPLE_RATE
end

-- What every request needs from the project, read once when the action starts.
function M.project_context(proj)
  return {
    proj = proj,
    cursor = reaper.GetCursorPositionEx(proj),
    sample_rate = sample_rate(proj),
  }
end

-- The tempo (BPM) in force at `time`, from the project's tempo map.
function M.tempo_at(proj, time)
  local _, _, bpm = reaper.TimeMap_GetTimeSigAtTime(proj, time)
  return bpm
end

-- Seconds that `bars` bars last from `start`, through the project's tempo and time-signature map
-- (a bar of 6/8 is six eighth notes; tempo changes on the way count).
function M.bars_to_seconds(proj, start, bars)
  local beats, measures = reaper.TimeMap2_timeToBeats(proj, start)
  local whole = math.floor(bars)
  local finish = reaper.TimeMap2_beatsToTime(proj, beats, measures + whole)
  local fraction = bars - whole
  if fraction > EPSILON then
    local _, bar = reaper.TimeMap2_timeToBeats(proj, finish)
    local bar_start = reaper.TimeMap2_beatsToTime(proj, 0, bar)
    local bar_end = reaper.TimeMap2_beatsToTime(proj, 0, bar + 1)
    finish = finish + fraction * (bar_end - bar_start)
  end
  return finish - start
end

return M

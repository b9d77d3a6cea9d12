-- @description Jukebox Bridge library: read the selected items, time selection and project context
-- @version 0.1.0
-- @author Jukebox Bridge
-- @noindex
--
-- A region is what the engine needs from one item: the source file, where the item starts in it
-- (the take's D_STARTOFFS), how much of it plays (item length x D_PLAYRATE, in source seconds) and
-- where it sits on the timeline. Every problem is reported, nothing is changed in the project.

local M = {}

local PROJECT = 0 -- the active project
local EPSILON = 1e-9 -- seconds; REAPER's float noise on offsets and lengths
local FALLBACK_SAMPLE_RATE = 44100
local SECTION_SOURCE_TYPE = "SECTION" -- reversed takes and section/loop sources
local AUDIO_EXTENSIONS = { wav = true, wave = true, aif = true, aiff = true, flac = true, ogg = true, mp3 = true }

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

local function take_problem(take)
  if not take then
    return "is an empty item"
  elseif reaper.TakeIsMIDI(take) then
    return "is a MIDI item; Jukebox Bridge works on audio items"
  end
  local source = reaper.GetMediaItemTake_Source(take)
  if not source then
    return "has no source"
  elseif reaper.GetMediaSourceType(source, "") == SECTION_SOURCE_TYPE then
    return "plays a reversed or section source; glue it first (Item: Glue items)"
  end
  return source_problem(source, reaper.GetMediaSourceFileName(source, ""))
end

local function span_problem(region, source_length)
  if region.start < -EPSILON then
    return "starts before the beginning of its source; trim or glue it first"
  elseif region.start + region.length > source_length + EPSILON then
    return "plays past the end of its source (looped?); trim or glue it first"
  elseif region.length <= EPSILON then
    return "has no length"
  end
  return nil
end

-- One item -> region, or nil and a sentence saying what is wrong with it.
function M.read_item(item)
  local take = reaper.GetActiveTake(item)
  local problem = take_problem(take)
  if problem then
    return nil, take_label(item, take) .. " " .. problem
  end
  local source = reaper.GetMediaItemTake_Source(take)
  local playrate = reaper.GetMediaItemTakeInfo_Value(take, "D_PLAYRATE")
  local item_length = reaper.GetMediaItemInfo_Value(item, "D_LENGTH")
  local region = {
    item = item, take = take, track = reaper.GetMediaItem_Track(item),
    label = take_label(item, take),
    source = reaper.GetMediaSourceFileName(source, ""),
    start = reaper.GetMediaItemTakeInfo_Value(take, "D_STARTOFFS"),
    length = item_length * playrate,
    position = reaper.GetMediaItemInfo_Value(item, "D_POSITION"),
    item_length = item_length,
    playrate = playrate,
    preserve_pitch = reaper.GetMediaItemTakeInfo_Value(take, "B_PPITCH"),
    channels = math.tointeger(reaper.GetMediaSourceNumChannels(source)) or 2,
  }
  problem = span_problem(region, (reaper.GetMediaSourceLength(source)))
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

function M.selected_items()
  local items = {}
  for i = 0, reaper.CountSelectedMediaItems(PROJECT) - 1 do
    items[#items + 1] = reaper.GetSelectedMediaItem(PROJECT, i)
  end
  return items
end

-- Items on the selected tracks that overlap [from, to).
function M.items_on_selected_tracks(from, to)
  local items = {}
  for t = 0, reaper.CountSelectedTracks(PROJECT) - 1 do
    local track = reaper.GetSelectedTrack(PROJECT, t)
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
function M.time_selection()
  local from, to = reaper.GetSet_LoopTimeRange2(PROJECT, false, false, 0, 0, false)
  if to - from > EPSILON then
    return from, to
  end
  return nil
end

local function sample_rate()
  if reaper.GetSetProjectInfo(PROJECT, "PROJECT_SRATE_USE", 0, false) == 1 then
    local rate = reaper.GetSetProjectInfo(PROJECT, "PROJECT_SRATE", 0, false)
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
function M.project_context()
  return {
    cursor = reaper.GetCursorPosition(),
    tempo = reaper.Master_GetTempo(),
    sample_rate = sample_rate(),
  }
end

return M

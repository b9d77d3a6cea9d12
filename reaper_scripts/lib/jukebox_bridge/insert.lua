-- @description Jukebox Bridge library: put finished renders on the timeline, one undo point each
-- @version 0.1.0
-- @author Jukebox Bridge
-- @noindex
--
-- A placement says where a job's takes go, decided when the action started:
--   kind = "new_item":  one new item at `position` on a target track, every take a take of that item
--                       (continuations start exactly where the source item ends; primes and
--                       generations start at the edit cursor);
--   kind = "new_takes": new takes on the source item (re-renders), which keeps its position and length.
-- New takes copy the source take's playrate and preserve-pitch flag, so material rendered in source
-- seconds plays at the same speed as the item it came from.

local M = {}

local PROJECT = 0
local UNDO_STATE_TRACKCFG = 1
local UNDO_STATE_ITEMS = 4
local WANT_DEFAULTS = true -- InsertTrackAtIndex: default envelopes and FX
local NEW_TRACK_NAME = "Jukebox"

local function take_name(job, number)
  local labels = {}
  for _, label in ipairs({ job.fields.artist, job.fields.genre }) do
    labels[#labels + 1] = label
  end
  local suffix = #labels > 0 and (" - " .. table.concat(labels, ", ")) or ""
  return string.format("Jukebox %s %d%s", job.verb, number, suffix)
end

local function missing_file(takes)
  for _, t in ipairs(takes) do
    if type(t.path) ~= "string" or not reaper.file_exists(t.path) then
      return tostring(t.path)
    end
  end
  return nil
end

local function set_take_source(take, path)
  local source = reaper.PCM_Source_CreateFromFile(path)
  local old = reaper.GetMediaItemTake_Source(take)
  reaper.SetMediaItemTake_Source(take, source)
  if old then -- SetMediaItemTake_Source never destroys the previous source
    reaper.PCM_Source_Destroy(old)
  end
  return source
end

-- A new take playing `t.path`; returns the take and its length in source seconds.
local function add_take(item, t, job, number)
  local placement = job.placement
  local take = reaper.AddTakeToMediaItem(item)
  local source = set_take_source(take, t.path)
  reaper.SetMediaItemTakeInfo_Value(take, "D_STARTOFFS", 0)
  reaper.SetMediaItemTakeInfo_Value(take, "D_PLAYRATE", placement.playrate)
  reaper.SetMediaItemTakeInfo_Value(take, "B_PPITCH", placement.preserve_pitch)
  reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", take_name(job, number), true)
  local seconds = reaper.GetMediaSourceLength(source)
  if not seconds or seconds <= 0 then
    seconds = t.length
  end
  return take, seconds
end

local function valid_track(track)
  return track ~= nil and reaper.ValidatePtr2(PROJECT, track, "MediaTrack*")
end

-- A new track right below `track` (or at the end of the project when there is none).
local function insert_track_below(track)
  local index = reaper.CountTracks(PROJECT)
  if track then
    index = math.floor(reaper.GetMediaTrackInfo_Value(track, "IP_TRACKNUMBER"))
  end
  reaper.InsertTrackAtIndex(index, WANT_DEFAULTS)
  local new_track = reaper.GetTrack(PROJECT, index)
  reaper.GetSetMediaTrackInfo_String(new_track, "P_NAME", NEW_TRACK_NAME, true)
  return new_track
end

-- The track for a new item, and whether it had to be created.
local function target_track(placement)
  local base = valid_track(placement.track) and placement.track or nil
  if placement.target == "selected" and valid_track(placement.selected_track) then
    return placement.selected_track, false
  end
  if placement.target == "new" or not base then
    return insert_track_below(base), true
  end
  return base, false
end

local function insert_new_item(job, takes)
  local placement = job.placement
  local track, created = target_track(placement)
  local item = reaper.AddMediaItemToTrack(track)
  local first, longest = nil, 0
  for number, t in ipairs(takes) do
    local take, seconds = add_take(item, t, job, number)
    first = first or take
    longest = math.max(longest, seconds)
  end
  reaper.SetActiveTake(first)
  reaper.SetMediaItemInfo_Value(item, "D_POSITION", placement.position)
  reaper.SetMediaItemInfo_Value(item, "D_LENGTH", longest / placement.playrate)
  return created and (UNDO_STATE_ITEMS | UNDO_STATE_TRACKCFG) or UNDO_STATE_ITEMS
end

local function insert_new_takes(job, takes)
  local item = job.placement.item
  local first
  for number, t in ipairs(takes) do
    local take = add_take(item, t, job, number)
    first = first or take
  end
  reaper.SetActiveTake(first)
  return UNDO_STATE_ITEMS
end

local function undo_label(job, takes)
  local noun = #takes == 1 and "take" or "takes"
  return string.format("Jukebox Bridge: %s (%d %s)", job.verb, #takes, noun)
end

-- Checks what can be checked before touching the project; nil and a message if the job cannot land.
local function landing_problem(job, takes)
  if #takes == 0 then
    return "The engine reported no takes."
  end
  local missing = missing_file(takes)
  if missing then
    return "A rendered file is missing: " .. missing
  end
  local item = job.placement.item
  if job.placement.kind == "new_takes" and not reaper.ValidatePtr2(PROJECT, item, "MediaItem*") then
    return "The source item was deleted while the job ran. The renders are at:\n" .. takes[1].path
  end
  return nil
end

-- Inserts a finished job's takes as one undo point; returns true, or nil and a message.
function M.apply(job, status)
  local takes = status.takes or {}
  local problem = landing_problem(job, takes)
  if problem then
    return nil, problem
  end
  reaper.PreventUIRefresh(1)
  reaper.Undo_BeginBlock2(PROJECT)
  local insert = job.placement.kind == "new_takes" and insert_new_takes or insert_new_item
  local flags = insert(job, takes)
  reaper.Undo_EndBlock2(PROJECT, undo_label(job, takes), flags)
  reaper.PreventUIRefresh(-1)
  reaper.UpdateArrange()
  return true
end

return M

-- @description Jukebox Bridge library: put finished renders on the timeline, one undo point each
-- @version 0.2.0
-- @author Jukebox Bridge
-- @noindex
--
-- A placement says where a job's takes go, decided when the action started, and names tracks and
-- items by GUID (the job runner is another script, and pointers do not cross scripts):
--   kind = "new_item":  one new item at `position` on a target track, every take a take of that item
--                       (continuations start exactly where the source item ends; primes and
--                       generations start at the edit cursor);
--   kind = "new_takes": new takes on the source item (re-renders, refines), which keeps its position and
--                       length; `startoffs` (refines: the draft take's offset into its file) where each starts.
-- New takes copy the source take's playrate, pitch and preserve-pitch flag, so material rendered in
-- source seconds plays at the same speed as the item it came from.
--
-- Everything happens in the job's own project (job.proj), whatever tab is active. The insertion runs
-- under pcall: PreventUIRefresh and the undo block are closed whatever happens, and an error becomes a
-- message (the partial change, if any, is one undo step labelled "failed").

local M = {}

local UNDO_STATE_TRACKCFG = 1
local UNDO_STATE_ITEMS = 4
local UNDO_STATE_ALL = -1
local TRACK_DEFAULTS = 1 -- InsertTrackInProject flags: default envelopes and FX
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

-- The track with this GUID in the project, or nil.
function M.find_track(proj, guid)
  if not guid then
    return nil
  end
  for i = 0, reaper.CountTracks(proj) - 1 do
    local track = reaper.GetTrack(proj, i)
    if reaper.GetTrackGUID(track) == guid then
      return track
    end
  end
  return nil
end

-- The item with this GUID in the project, or nil.
function M.find_item(proj, guid)
  if not guid then
    return nil
  end
  for i = 0, reaper.CountMediaItems(proj) - 1 do
    local item = reaper.GetMediaItem(proj, i)
    local _, item_guid = reaper.GetSetMediaItemInfo_String(item, "GUID", "", false)
    if item_guid == guid then
      return item
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
  reaper.SetMediaItemTakeInfo_Value(take, "D_STARTOFFS", placement.startoffs or 0)
  reaper.SetMediaItemTakeInfo_Value(take, "D_PLAYRATE", placement.playrate)
  reaper.SetMediaItemTakeInfo_Value(take, "B_PPITCH", placement.preserve_pitch)
  reaper.SetMediaItemTakeInfo_Value(take, "D_PITCH", placement.pitch or 0)
  reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", take_name(job, number), true)
  local seconds = reaper.GetMediaSourceLength(source)
  if not seconds or seconds <= 0 then
    seconds = t.length
  end
  return take, seconds
end

-- A new track in the job's project at `index` (InsertTrackInProject, REAPER 7; before it,
-- InsertTrackAtIndex, which only works on the active project).
local function insert_track(proj, index)
  if reaper.APIExists("InsertTrackInProject") then
    reaper.InsertTrackInProject(proj, index, TRACK_DEFAULTS)
  elseif proj == reaper.EnumProjects(-1) then
    reaper.InsertTrackAtIndex(index, true)
  else
    error("this REAPER can add a track only to the active project; switch to the job's project tab and "
      .. "run the action again", 0)
  end
  return reaper.GetTrack(proj, index)
end

-- A new track right below `track` (or at the end of the project when there is none).
local function insert_track_below(proj, track)
  local index = reaper.CountTracks(proj)
  if track then
    index = math.floor(reaper.GetMediaTrackInfo_Value(track, "IP_TRACKNUMBER"))
  end
  local new_track = insert_track(proj, index)
  reaper.GetSetMediaTrackInfo_String(new_track, "P_NAME", NEW_TRACK_NAME, true)
  return new_track
end

-- The track for a new item, and whether it had to be created.
local function target_track(proj, placement)
  local base = M.find_track(proj, placement.track)
  local selected = M.find_track(proj, placement.selected_track)
  if placement.target == "selected" and selected then
    return selected, false
  end
  if placement.target == "new" or not base then
    return insert_track_below(proj, base), true
  end
  return base, false
end

local function insert_new_item(job, takes, state)
  local placement = job.placement
  local track, created = target_track(job.proj, placement)
  state.flags = created and (UNDO_STATE_ITEMS | UNDO_STATE_TRACKCFG) or UNDO_STATE_ITEMS
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
end

local function insert_new_takes(job, takes, state)
  local item = M.find_item(job.proj, job.placement.item)
  state.flags = UNDO_STATE_ITEMS
  local first
  for number, t in ipairs(takes) do
    local take = add_take(item, t, job, number)
    first = first or take
  end
  reaper.SetActiveTake(first)
end

local function undo_label(job, takes)
  local noun = #takes == 1 and "take" or "takes"
  return string.format("Jukebox Bridge: %s (%d %s)", job.verb, #takes, noun)
end

local function render_list(takes)
  local paths = {}
  for _, t in ipairs(takes) do
    paths[#paths + 1] = tostring(t.path)
  end
  return table.concat(paths, "\n")
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
  if not job.proj then
    return "The project this job came from was closed. The renders are at:\n" .. render_list(takes)
  end
  if job.placement.kind == "new_takes" and not M.find_item(job.proj, job.placement.item) then
    return "The source item was deleted while the job ran. The renders are at:\n" .. render_list(takes)
  end
  return nil
end

-- Inserts a finished job's takes into job.proj as one undo point; returns true, or nil and a message.
function M.apply(job, status)
  local takes = status.takes or {}
  local problem = landing_problem(job, takes)
  if problem then
    return nil, problem
  end
  local insert = job.placement.kind == "new_takes" and insert_new_takes or insert_new_item
  local state = { flags = UNDO_STATE_ALL }
  reaper.PreventUIRefresh(1)
  reaper.Undo_BeginBlock2(job.proj)
  local ok, err = pcall(insert, job, takes, state)
  local label = undo_label(job, takes)
  reaper.Undo_EndBlock2(job.proj, ok and label or (label .. " (failed)"), state.flags)
  reaper.PreventUIRefresh(-1)
  reaper.UpdateArrange()
  if not ok then
    return nil, "REAPER refused the insertion (" .. tostring(err) .. "). The renders are at:\n" .. render_list(takes)
  end
  return true
end

return M

-- @description Jukebox Bridge library: the actions (each action file calls one of these)
-- @version 0.1.0
-- @author Jukebox Bridge
-- @noindex
--
-- Every action reads what it needs from the project first and changes nothing until a render is
-- finished; then insert.apply adds it as one undo point. Problems are reported in a message box
-- titled with the script's name.

local settings = require("jukebox_bridge.settings")
local selection = require("jukebox_bridge.selection")
local requests = require("jukebox_bridge.requests")
local insert = require("jukebox_bridge.insert")
local jobs = require("jukebox_bridge.jobs")
local transport = require("jukebox_bridge.transport")

local M = {}

M.VERSION = "0.1.0"
local PROJECT = 0
local MESSAGE_OK = 0
local DIALOG_OPTIONS = "separator=\n,extrawidth=240"
local TERMINAL = { done = true, failed = true, cancelled = true }

local function message(title, text)
  reaper.ShowMessageBox(text, title, MESSAGE_OK)
end

-- The script's name from its file path (message box titles).
function M.script_title(path)
  return (path or ""):match("([^/\\]+)%.lua$") or "Jukebox Bridge"
end

local function first_selected_track()
  if reaper.CountSelectedTracks(PROJECT) > 0 then
    return reaper.GetSelectedTrack(PROJECT, 0)
  end
  return nil
end

local function split_lines(text)
  local parts, from = {}, 1
  while true do
    local stop = text:find("\n", from, true)
    if not stop then
      parts[#parts + 1] = text:sub(from)
      return parts
    end
    parts[#parts + 1] = text:sub(from, stop - 1)
    from = stop + 1
  end
end

-- Asks for some settings (prefilled from cfg) in one dialog; returns cfg updated for this run only,
-- or nil if the user cancelled or typed something invalid (then after saying what).
local function ask(title, cfg, keys)
  local captions, values = {}, {}
  for i, key in ipairs(keys) do
    captions[i] = settings.spec(key).label
    values[i] = settings.format(key, cfg[key])
  end
  local ok, answer = reaper.GetUserInputs(title, #keys, table.concat(captions, ",") .. "," .. DIALOG_OPTIONS,
    table.concat(values, "\n"))
  if not ok then
    return nil
  end
  local typed = split_lines(answer)
  for i, key in ipairs(keys) do
    local value, problem = settings.parse(key, typed[i])
    if value == nil then
      message(title, problem .. "\nNothing was sent to the engine.")
      return nil
    end
    cfg[key] = value
  end
  return cfg
end

local function region_job(verb, region, cfg, ctx, placement)
  return {
    label = region.label, verb = verb, cfg = cfg, placement = placement, remember = true,
    fields = requests.for_region(verb, region, cfg, ctx), on_done = insert.apply,
  }
end

local function new_item_placement(region, cfg, position)
  return {
    kind = "new_item", position = position, target = cfg.target_track,
    track = region.track, selected_track = first_selected_track(),
    playrate = region.playrate, preserve_pitch = region.preserve_pitch,
  }
end

local function checked_regions(title, items)
  local regions, problems = selection.regions_of(items)
  if not regions then
    message(title, "Nothing was sent to the engine:\n\n" .. problems)
  end
  return regions
end

local function selected_regions(title)
  local items = selection.selected_items()
  if #items == 0 then
    message(title, "Select one or more audio items first.")
    return nil
  end
  return checked_regions(title, items)
end

-- Continue: new material right after each selected item, as a new item starting where it ends.
function M.continue_selected(title)
  local regions = selected_regions(title)
  if not regions then
    return
  end
  local cfg, ctx, list = settings.all(), selection.project_context(), {}
  for _, region in ipairs(regions) do
    local placement = new_item_placement(region, cfg, region.position + region.item_length)
    list[#list + 1] = region_job("continue", region, cfg, ctx, placement)
  end
  jobs.run(title, list, { progress = true })
end

local function narrowed_to(title, regions, from, to)
  local narrowed, problems = {}, {}
  for _, region in ipairs(regions) do
    local part, problem = selection.narrow(region, from, to)
    narrowed[#narrowed + 1] = part
    problems[#problems + 1] = problem
  end
  if #problems > 0 then
    message(title, "Nothing was sent to the engine:\n\n" .. table.concat(problems, "\n"))
    return nil
  end
  return narrowed
end

-- The prompt regions: the selected items (or, with none selected, the items on the selected tracks
-- under the time selection), cut to the time selection when there is one.
local function prime_regions(title)
  local from, to = selection.time_selection()
  local items = selection.selected_items()
  if #items == 0 and from then
    items = selection.items_on_selected_tracks(from, to)
  end
  if #items == 0 then
    message(title, "Select one or more audio items, or make a time selection over items on the selected tracks.")
    return nil
  end
  local regions = checked_regions(title, items)
  if regions and from then
    return narrowed_to(title, regions, from, to)
  end
  return regions
end

-- Prime: each region is a prompt; the new material lands at the edit cursor.
function M.prime_selected(title)
  local regions = prime_regions(title)
  if not regions then
    return
  end
  local cfg, ctx, list = settings.all(), selection.project_context(), {}
  for _, region in ipairs(regions) do
    list[#list + 1] = region_job("prime", region, cfg, ctx, new_item_placement(region, cfg, ctx.cursor))
  end
  jobs.run(title, list, { progress = true })
end

-- Re-render: each selected item again in a chosen artist and genre, as new takes on that item.
function M.rerender_selected(title)
  local regions = selected_regions(title)
  if not regions then
    return
  end
  local cfg = ask(title, settings.all(), { "artist", "genre", "takes" })
  if not cfg then
    return
  end
  local ctx, list = selection.project_context(), {}
  for _, region in ipairs(regions) do
    local placement = {
      kind = "new_takes", item = region.item,
      playrate = region.playrate, preserve_pitch = region.preserve_pitch,
    }
    list[#list + 1] = region_job("rerender", region, cfg, ctx, placement)
  end
  jobs.run(title, list, { progress = true })
end

-- Generate: new material from labels (and lyrics) at the edit cursor, on the target track.
function M.generate_at_cursor(title)
  local cfg = ask(title, settings.all(), { "artist", "genre", "seconds", "bars" })
  if not cfg then
    return
  end
  local ctx = selection.project_context()
  local selected = first_selected_track()
  local job = {
    label = "Generate at " .. reaper.format_timestr(ctx.cursor, ""), verb = "generate", cfg = cfg,
    remember = true, on_done = insert.apply,
    fields = requests.for_generate(cfg, ctx, ctx.cursor, nil),
    placement = {
      kind = "new_item", position = ctx.cursor, target = cfg.target_track,
      track = selected, selected_track = selected, playrate = 1, preserve_pitch = 1,
    },
  }
  jobs.run(title, { job }, { progress = true })
end

local function report_cancelled(job, status)
  local reply = status.reply or {}
  local count = type(reply.args) == "table" and tonumber(reply.args[1]) or nil
  if count == 0 then
    return nil, "the engine had no running job to cancel."
  end
  return true
end

-- The engine id of the newest job started from REAPER in this session, if it is still running.
local function last_running_job()
  local job_id = reaper.GetExtState(jobs.SECTION, jobs.LAST_JOB_KEY)
  if job_id == "" then
    return nil, "No Jukebox job was started from REAPER in this session."
  end
  local status = transport.read_status({ files = { status = reaper.GetExtState(jobs.SECTION, jobs.LAST_STATUS_KEY) } })
  if not status or TERMINAL[status.state] then
    return nil, "The last Jukebox job (" .. job_id .. ") has already finished."
  end
  return job_id
end

-- Cancel: which = "last" (the newest job started from REAPER) or "all" (every job of the engine).
function M.cancel(title, which)
  local params = { all = true }
  if which == "last" then
    local job_id, problem = last_running_job()
    if not job_id then
      message(title, problem)
      return
    end
    params = { job_id = job_id }
  end
  local job = {
    label = which == "last" and "Cancel job " .. params.job_id or "Cancel all jobs",
    verb = "cancel", fields = params, cfg = settings.all(), on_done = report_cancelled,
  }
  jobs.run(title, { job }, { progress = false })
end

-- Settings: one dialog with every setting; nothing is saved unless every value is valid.
function M.edit_settings(title)
  local keys = {}
  for i, spec in ipairs(settings.SPECS) do
    keys[i] = spec.key
  end
  local cfg = ask(title, settings.all(), keys)
  if not cfg then
    return
  end
  for _, key in ipairs(keys) do
    settings.set(key, cfg[key])
  end
end

return M

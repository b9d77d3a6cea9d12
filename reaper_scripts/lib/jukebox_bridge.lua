-- @description Jukebox Bridge library: the actions (each action file calls one of these)
-- @version 0.2.0
-- @author Jukebox Bridge
-- @noindex
--
-- Every action captures its project, reads what it needs from it and changes nothing; it starts the
-- client for each job and hands the jobs to the one job runner (jobs.lua), which inserts each finished
-- render into that project as one undo point. Problems are reported in a message box titled with the
-- script's name.

local settings = require("jukebox_bridge.settings")
local selection = require("jukebox_bridge.selection")
local requests = require("jukebox_bridge.requests")
local jobs = require("jukebox_bridge.jobs")
local transport = require("jukebox_bridge.transport")

local M = {}

M.VERSION = "0.2.0"
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

-- The project tab the action was started in. Every later call uses it, so switching tabs while a
-- job runs still puts the take in the project it came from.
local function current_project()
  return (reaper.EnumProjects(-1))
end

local function track_guid(track)
  return track and reaper.GetTrackGUID(track) or nil
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

-- Sends one render job per region, or nothing and one message listing every problem.
-- at(region) is where the new material starts; placement(region, at) where its takes go.
local function submit_region_jobs(title, verb, regions, cfg, ctx, at, placement)
  local list, problems = {}, {}
  for _, region in ipairs(regions) do
    local start = at(region)
    local fields, problem = requests.for_region(verb, region, cfg, ctx, start)
    if fields then
      list[#list + 1] = {
        label = region.label, verb = verb, cfg = cfg, fields = fields, placement = placement(region, start),
        on_done = "insert", remember = true,
      }
    else
      problems[#problems + 1] = region.label .. ": " .. problem
    end
  end
  if #problems > 0 then
    message(title, "Nothing was sent to the engine:\n\n" .. table.concat(problems, "\n"))
    return
  end
  local key = jobs.project_key(ctx.proj)
  for _, job in ipairs(list) do
    job.project = key
  end
  jobs.submit(title, list, { progress = true })
end

local function new_item_placement(proj, cfg)
  local selected = track_guid(selection.first_selected_track(proj))
  return function(region, position)
    return {
      kind = "new_item", position = position, target = cfg.target_track,
      track = region.track_guid, selected_track = selected,
      playrate = region.playrate, preserve_pitch = region.preserve_pitch, pitch = region.pitch,
    }
  end
end

local function checked_regions(title, items)
  local regions, problems = selection.regions_of(items)
  if not regions then
    message(title, "Nothing was sent to the engine:\n\n" .. problems)
  end
  return regions
end

local function selected_regions(title, proj)
  local items = selection.selected_items(proj)
  if #items == 0 then
    message(title, "Select one or more audio items first.")
    return nil
  end
  return checked_regions(title, items)
end

-- Continue: new material right after each selected item, as a new item starting where it ends.
function M.continue_selected(title)
  local proj = current_project()
  local regions = selected_regions(title, proj)
  if not regions then
    return
  end
  local cfg, ctx = settings.all(), selection.project_context(proj)
  submit_region_jobs(title, "continue", regions, cfg, ctx,
    function(region) return region.position + region.item_length end, new_item_placement(proj, cfg))
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
local function prime_regions(title, proj)
  local from, to = selection.time_selection(proj)
  local items = selection.selected_items(proj)
  if #items == 0 and from then
    items = selection.items_on_selected_tracks(proj, from, to)
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
  local proj = current_project()
  local regions = prime_regions(title, proj)
  if not regions then
    return
  end
  local cfg, ctx = settings.all(), selection.project_context(proj)
  submit_region_jobs(title, "prime", regions, cfg, ctx, function() return ctx.cursor end,
    new_item_placement(proj, cfg))
end

-- Where a job's takes go when they become new takes of the source item: same playrate and pitch, and for
-- a refine the draft's own source offset (`startoffs`), so the new take lines up with the one it refines.
local function new_takes_placement(region, startoffs)
  return { kind = "new_takes", item = region.item_guid, playrate = region.playrate,
    preserve_pitch = region.preserve_pitch, pitch = region.pitch, startoffs = startoffs }
end

-- Re-render: each selected item again in a chosen artist and genre, as new takes on that item.
function M.rerender_selected(title)
  local proj = current_project()
  local regions = selected_regions(title, proj)
  if not regions then
    return
  end
  local cfg = ask(title, settings.all(), { "artist", "genre", "takes" })
  if not cfg then
    return
  end
  local ctx = selection.project_context(proj)
  submit_region_jobs(title, "rerender", regions, cfg, ctx, function(region) return region.position end,
    function(region) return new_takes_placement(region) end)
end

-- Refine: each selected item's active take (a draft the engine rendered) at full quality, from the draft's own
-- saved codes, as a new take on that item lined up with the draft (same source offset, playrate and pitch).
function M.refine_selected(title)
  local proj = current_project()
  local regions = selected_regions(title, proj)
  if not regions then
    return
  end
  local cfg, ctx = settings.all(), selection.project_context(proj)
  submit_region_jobs(title, "refine", regions, cfg, ctx, function(region) return region.position end,
    function(region) return new_takes_placement(region, region.start) end)
end

-- Generate: new material from labels (and lyrics) at the edit cursor, on the target track.
function M.generate_at_cursor(title)
  local proj = current_project()
  local cfg = ask(title, settings.all(), { "artist", "genre", "seconds", "bars" })
  if not cfg then
    return
  end
  local ctx = selection.project_context(proj)
  local fields, problem = requests.for_generate(cfg, ctx, ctx.cursor, nil)
  if not fields then
    message(title, "Nothing was sent to the engine:\n\n" .. problem)
    return
  end
  local selected = track_guid(selection.first_selected_track(proj))
  local job = {
    label = "Generate at " .. reaper.format_timestr(ctx.cursor, ""), verb = "generate", cfg = cfg,
    remember = true, on_done = "insert", fields = fields, project = jobs.project_key(proj),
    placement = {
      kind = "new_item", position = ctx.cursor, target = cfg.target_track,
      track = selected, selected_track = selected, playrate = 1, preserve_pitch = 1, pitch = 0,
    },
  }
  jobs.submit(title, { job }, { progress = true })
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
    verb = "cancel", fields = params, cfg = settings.all(), on_done = "report_cancelled",
  }
  jobs.submit(title, { job }, { progress = false })
end

-- The job runner: the one background script that follows every job (see jobs.lua).
function M.run_jobs()
  jobs.run_runner()
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

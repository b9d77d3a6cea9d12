-- @description Jukebox Bridge library: hand jobs to the one background job runner, and the runner itself
-- @version 0.2.0
-- @author Jukebox Bridge
-- @noindex
--
-- Actions never poll. An action starts the client for each job, writes the job's description next to
-- its other files (job-<key>.job.json) and hands it to the job runner, "Jukebox Bridge - Job
-- runner.lua": a single deferred script that follows every job of every action, so running an action
-- again never meets REAPER's "script is already running" prompt. The hand-over is an ExtState queue;
-- the runner announces it is alive with a heartbeat in ExtState, and an action starts it (by its
-- command id, registered with AddRemoveReaScript) only when that heartbeat is stale.
--
-- The runner polls each job's status file about 30 times a second. One job's error never stops the
-- others (each check runs under pcall). A job ends when its status is final, when the client has
-- exited without a final status (the launcher's exit code says why), or when the status file has not
-- changed for HEARTBEAT_TIMEOUT seconds (the client rewrites it at least every few seconds, so it is
-- gone). When the runner is closed (by the user, or REAPER quitting) it cancels the jobs it still
-- follows. A job is {title, label, verb, fields, cfg, placement, project, on_done, progress, remember}.

local json = require("jukebox_bridge.json")
local transport = require("jukebox_bridge.transport")
local progress = require("jukebox_bridge.progress")
local insert = require("jukebox_bridge.insert")

local M = {}

M.SECTION = "JukeboxBridge"
M.LAST_JOB_KEY = "last_job_id" -- the engine's id of the newest accepted job, for "Cancel last job"
M.LAST_STATUS_KEY = "last_job_status" -- that job's status file
M.QUEUE_KEY = "runner_queue" -- job description files handed over and not yet taken by the runner
M.BEAT_KEY = "runner_beat" -- time_precise() of the runner's latest tick
M.ORPHANS_KEY = "runner_orphans" -- jobs left unaccepted when the runner closed: cancelled later
M.RUNNER_FILE = "Jukebox Bridge - Job runner.lua"
M.RUNNER_TITLE = "Jukebox Bridge - Job runner"
M.PROJECT_KEY = "project_key" -- project ext state naming a project for the runner
local START_TIMEOUT = 30 -- seconds for the client to write its first status
M.HEARTBEAT_TIMEOUT = 20 -- seconds without any change of the status file: the client is gone
local RUNNER_STALE = 2.0 -- seconds without a runner tick: it is not running
local ORPHAN_TIMEOUT = 60 -- seconds to wait for an orphaned job to be accepted, to cancel it
local MESSAGE_OK = 0 -- ShowMessageBox type: OK button only
local PERSIST = false
local TERMINAL = { done = true, failed = true, cancelled = true }

-- Hand-over (the action side) -------------------------------------------------------------------

-- A key naming the project for the runner (a pointer means nothing in another script): stored in
-- the project's ext state, made once.
function M.project_key(proj)
  local _, key = reaper.GetProjExtState(proj, M.SECTION, M.PROJECT_KEY)
  if key == "" then
    key = string.format("%d-%06d", os.time(), math.floor((reaper.time_precise() % 1) * 1e6))
    reaper.SetProjExtState(proj, M.SECTION, M.PROJECT_KEY, key)
  end
  return key
end

-- The open project with this key, or nil (closed meanwhile).
function M.find_project(key)
  local i = 0
  while true do
    local proj = reaper.EnumProjects(i)
    if not proj then
      return nil
    end
    local _, value = reaper.GetProjExtState(proj, M.SECTION, M.PROJECT_KEY)
    if value == key then
      return proj
    end
    i = i + 1
  end
end

local function queue_list(key)
  local list = {}
  for line in reaper.GetExtState(M.SECTION, key):gmatch("[^\n]+") do
    list[#list + 1] = line
  end
  return list
end

local function runner_alive()
  local beat = tonumber(reaper.GetExtState(M.SECTION, M.BEAT_KEY))
  return beat ~= nil and reaper.time_precise() - beat < RUNNER_STALE
end

local function start_runner()
  local command = reaper.AddRemoveReaScript(true, 0, transport.scripts_dir() .. M.RUNNER_FILE, true)
  if not command or command == 0 then
    return nil, "REAPER could not register the job runner (" .. M.RUNNER_FILE .. ")."
  end
  reaper.Main_OnCommand(command, 0)
  return true
end

-- What the runner needs to know about a job, as JSON-able data.
local function description(title, job, handle, options)
  return {
    title = title, label = job.label, verb = job.verb, fields = job.fields, remember = job.remember or false,
    cfg = { host = job.cfg.host, port = job.cfg.port, client = job.cfg.client, jobs_dir = job.cfg.jobs_dir },
    placement = job.placement, project = job.project, on_done = job.on_done, progress = options.progress or false,
    files = handle.files, started = handle.started,
  }
end

local function report(title, messages)
  if #messages > 0 then
    reaper.ShowMessageBox(table.concat(messages, "\n\n"), title, MESSAGE_OK)
  end
end

-- Starts the client for each job and hands the jobs to the runner (starting it if needed).
-- options.progress: show them in the runner's progress window.
function M.submit(title, jobs, options)
  options = options or {}
  local messages, queued = {}, queue_list(M.QUEUE_KEY)
  local handed = 0
  for _, job in ipairs(jobs) do
    local handle, message = transport.start(job.verb, job.fields, job.cfg)
    local ok, err = handle ~= nil, message
    if ok then
      ok, err = transport.write_file(handle.files.spec, json.encode(description(title, job, handle, options)))
    end
    if ok then
      queued[#queued + 1] = handle.files.spec
      handed = handed + 1
    else
      messages[#messages + 1] = job.label .. ": " .. tostring(err)
    end
  end
  reaper.SetExtState(M.SECTION, M.QUEUE_KEY, table.concat(queued, "\n"), PERSIST)
  if handed > 0 and not runner_alive() then
    local ok, err = start_runner()
    if not ok then
      messages[#messages + 1] = err
    end
  end
  report(title, messages)
end

-- The runner ------------------------------------------------------------------------------------

local function finish(job, keep_log)
  job.finished = true
  transport.cleanup(job.handle, keep_log)
end

local function failure_text(job, status)
  local err = status.error or {}
  return string.format("%s: %s [%s]", job.label, err.message or "the job failed", err.code or "failed")
end

local function remember(job, status)
  if job.remember and status.job_id and not job.remembered then
    reaper.SetExtState(M.SECTION, M.LAST_JOB_KEY, status.job_id, PERSIST)
    reaper.SetExtState(M.SECTION, M.LAST_STATUS_KEY, job.handle.files.status, PERSIST)
    job.remembered = true
  end
end

local function report_cancelled(_, status)
  local reply = status.reply or {}
  local count = type(reply.args) == "table" and tonumber(reply.args[1]) or nil
  if count == 0 then
    return nil, "the engine had no running job to cancel."
  end
  return true
end

local ON_DONE = { insert = insert.apply, report_cancelled = report_cancelled }

local function check_done(job, status)
  local on_done = ON_DONE[job.on_done]
  if not on_done then
    finish(job, false)
    return nil
  end
  job.proj = job.project and M.find_project(job.project) or nil
  local ok, message = on_done(job, status)
  finish(job, false)
  if not ok then
    return job.label .. ": " .. message
  end
  if type(status.warnings) == "table" and #status.warnings > 0 then -- placed, with a caveat the user allowed
    return job.label .. ": placed, but " .. table.concat(status.warnings, " ")
  end
  return nil
end

-- The client ended (its exit code is known) without a final status.
local function exit_failure(job, code)
  finish(job, true)
  if transport.NOT_FOUND_CODES[code] then
    return string.format("%s: Could not run the Jukebox Bridge client (%s). Set 'Client command' in Jukebox "
      .. "Bridge - Settings to the full path of jukebox-bridge. See %s [client_failed]", job.label,
      job.handle.command, job.handle.files.log)
  end
  return string.format("%s: the Jukebox Bridge client stopped (exit code %d) before the job finished. See %s "
    .. "[client_failed]", job.label, code, job.handle.files.log)
end

-- Reads one job's state; returns a message for the user when something went wrong.
local function check(job, now)
  local code = transport.read_exit_code(job.handle) -- first: a final status, if any, was written before it
  local status, text = transport.read_status(job.handle)
  if text ~= job.last_text then
    job.last_text, job.last_change = text, now
  end
  if status then
    job.status = status
    remember(job, status)
    if status.state == "done" then
      return check_done(job, status)
    elseif status.state == "failed" then
      finish(job, (status.error or {}).code == "client_failed")
      return failure_text(job, status)
    elseif status.state == "cancelled" then
      finish(job, false)
      return nil
    end
  end
  if code then
    return exit_failure(job, code)
  end
  if not text and now - job.handle.started > START_TIMEOUT then
    finish(job, true)
    return string.format("%s: the Jukebox Bridge client did not report within %d s. See %s",
      job.label, START_TIMEOUT, job.handle.files.log)
  end
  if text and now - job.last_change > M.HEARTBEAT_TIMEOUT then
    finish(job, true)
    return string.format("%s: the Jukebox Bridge client stopped reporting (no sign of life for %d s); it was "
      .. "closed or crashed. See %s", job.label, M.HEARTBEAT_TIMEOUT, job.handle.files.log)
  end
  return nil
end

local function read_description(path)
  local text = transport.read_file(path)
  local spec = text and json.try_decode(text)
  if type(spec) ~= "table" or type(spec.files) ~= "table" then
    return nil
  end
  spec.handle = { verb = spec.verb, files = spec.files, started = spec.started or reaper.time_precise(),
    command = "jukebox-bridge request " .. tostring(spec.verb) }
  spec.last_change = reaper.time_precise()
  return spec
end

-- Cancels, through the engine, a job the runner can no longer follow (fire and forget).
local function cancel_remote(job_id, cfg)
  transport.start("cancel", { job_id = job_id }, cfg)
end

-- Jobs left behind by a runner that was closed before the engine accepted them: cancel each once its
-- status names the engine's job, give up after ORPHAN_TIMEOUT.
local function handle_orphans()
  local kept = {}
  for _, path in ipairs(queue_list(M.ORPHANS_KEY)) do
    local spec = read_description(path)
    local status = spec and transport.read_status(spec.handle)
    if spec and status and status.job_id and not TERMINAL[status.state] then
      cancel_remote(status.job_id, spec.cfg)
      transport.cleanup(spec.handle, false)
    elseif spec and not (status and TERMINAL[status.state])
        and reaper.time_precise() - (spec.started or 0) < ORPHAN_TIMEOUT then
      kept[#kept + 1] = path
    elseif spec then
      transport.cleanup(spec.handle, false)
    end
  end
  reaper.SetExtState(M.SECTION, M.ORPHANS_KEY, table.concat(kept, "\n"), PERSIST)
end

local function any_running(jobs, with_progress)
  for _, job in ipairs(jobs) do
    if not job.finished and (not with_progress or job.progress) then
      return true
    end
  end
  return false
end

-- The runner: the body of "Jukebox Bridge - Job runner.lua".
function M.run_runner()
  local jobs = {}
  local stopped = false

  local function take_queue()
    local added = false
    for _, path in ipairs(queue_list(M.QUEUE_KEY)) do
      local spec = read_description(path)
      if spec then
        jobs[#jobs + 1] = spec
        added = added or spec.progress
      end
    end
    reaper.DeleteExtState(M.SECTION, M.QUEUE_KEY, false)
    if added then
      progress.open(M.RUNNER_TITLE)
    end
  end

  local function visible(list)
    local out = {}
    for _, job in ipairs(list) do
      if job.progress and not job.finished then
        out[#out + 1] = job
      end
    end
    return out
  end

  local function stop()
    stopped = true
    progress.close()
    reaper.DeleteExtState(M.SECTION, M.BEAT_KEY, false)
  end

  -- Closed (by the user, or REAPER quitting) while jobs run: cancel them, nobody would insert them.
  local function on_exit()
    local orphans = queue_list(M.ORPHANS_KEY)
    for _, job in ipairs(jobs) do
      if not job.finished then
        local status = job.status or transport.read_status(job.handle)
        if status and status.job_id then
          cancel_remote(status.job_id, job.cfg)
          transport.cleanup(job.handle, false)
        elseif job.verb ~= "cancel" then
          orphans[#orphans + 1] = job.handle.files.spec
        end
        job.finished = true
      end
    end
    reaper.SetExtState(M.SECTION, M.ORPHANS_KEY, table.concat(orphans, "\n"), PERSIST)
    if not stopped then
      stop()
    end
  end

  local function tick()
    local now = reaper.time_precise()
    reaper.SetExtState(M.SECTION, M.BEAT_KEY, string.format("%.6f", now), PERSIST)
    take_queue()
    local messages, titles = {}, {}
    for _, job in ipairs(jobs) do
      if not job.finished then
        local ok, message = pcall(check, job, now)
        if not ok then -- a bug or an API error in one job: that job ends, the others go on
          pcall(finish, job, true)
          message = job.label .. ": " .. tostring(message)
        end
        if message then
          if not messages[job.title] then
            messages[job.title] = {}
            titles[#titles + 1] = job.title
          end
          table.insert(messages[job.title], message)
        end
      end
    end
    progress.draw(visible(jobs))
    if not any_running(jobs, true) then
      progress.close()
    end
    for _, title in ipairs(titles) do
      report(title, messages[title])
    end
    if any_running(jobs, false) or #queue_list(M.QUEUE_KEY) > 0 then
      reaper.defer(tick)
    else
      stop()
    end
  end

  reaper.atexit(on_exit)
  handle_orphans()
  tick()
end

return M

-- @description Jukebox Bridge library: run jobs in the background and follow them from a defer loop
-- @version 0.1.0
-- @author Jukebox Bridge
-- @noindex
--
-- A job is {label, verb, fields, on_done = function(job, status) -> true | nil, message}. run() starts
-- the client for each, then polls the status files about 30 times a second until every job ended.
-- Failures are gathered per tick into one message box titled with the script's name.

local transport = require("jukebox_bridge.transport")
local progress = require("jukebox_bridge.progress")

local M = {}

M.SECTION = "JukeboxBridge"
M.LAST_JOB_KEY = "last_job_id" -- the engine's id of the newest accepted job, for "Cancel last job"
M.LAST_STATUS_KEY = "last_job_status" -- that job's status file
local START_TIMEOUT = 30 -- seconds for the client to write its first status
local MESSAGE_OK = 0 -- ShowMessageBox type: OK button only
local PERSIST = false

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

local function finish(job, keep_log)
  job.finished = true
  transport.cleanup(job.handle, keep_log)
end

local function check_done(job, status)
  local ok, message = job.on_done(job, status)
  finish(job, false)
  if not ok then
    return job.label .. ": " .. message
  end
  return nil
end

-- Reads one job's status; returns a message for the user when something went wrong.
local function check(job, now)
  local status = transport.read_status(job.handle)
  if not status then
    if now - job.handle.started > START_TIMEOUT then
      finish(job, true)
      return string.format("%s: the Jukebox Bridge client did not report within %d s. See %s",
        job.label, START_TIMEOUT, job.handle.files.log)
    end
    return nil
  end
  job.status = status
  remember(job, status)
  if status.state == "done" then
    return check_done(job, status)
  elseif status.state == "failed" then
    finish(job, (status.error or {}).code == "client_failed")
    return failure_text(job, status)
  elseif status.state == "cancelled" then
    finish(job, false)
  end
  return nil
end

local function start_all(jobs)
  local messages = {}
  for _, job in ipairs(jobs) do
    local handle, message = transport.start(job.verb, job.fields, job.cfg)
    if handle then
      job.handle = handle
    else
      job.finished = true
      messages[#messages + 1] = job.label .. ": " .. message
    end
  end
  return messages
end

local function any_running(jobs)
  for _, job in ipairs(jobs) do
    if not job.finished then
      return true
    end
  end
  return false
end

local function report(title, messages)
  if #messages > 0 then
    reaper.ShowMessageBox(table.concat(messages, "\n\n"), title, MESSAGE_OK)
  end
end

-- Starts the jobs and follows them; options.progress opens the progress window.
function M.run(title, jobs, options)
  report(title, start_all(jobs))
  if not any_running(jobs) then
    return
  end
  if options and options.progress then
    progress.open(title, #jobs)
  end
  local function tick()
    local messages, now = {}, reaper.time_precise()
    for _, job in ipairs(jobs) do
      if not job.finished then
        messages[#messages + 1] = check(job, now)
      end
    end
    progress.draw(jobs)
    report(title, messages)
    if any_running(jobs) then
      reaper.defer(tick)
    else
      progress.close()
    end
  end
  reaper.defer(tick)
end

return M

-- @description Jukebox Bridge library: talk to the engine through the jukebox-bridge client and a status file
-- @version 0.1.0
-- @author Jukebox Bridge
-- @noindex
--
-- Lua in REAPER has no sockets, so each request runs the project's command-line client in the
-- background (reaper.ExecProcess with timeout -2):
--
--   jukebox-bridge request VERB --host H --port P --json @REQUEST.json --status-file STATUS.json
--
-- The client sends the OSC request, follows the job and rewrites STATUS.json atomically; the action
-- polls that file from its defer loop. The command goes through a small launcher script (sh on
-- macOS/Linux, cmd on Windows) so quoting is the shell's, never ExecProcess's, and the launcher writes
-- a "failed" status itself if the client cannot start at all.

local json = require("jukebox_bridge.json")

local M = {}

local NO_WAIT_MINIMIZED = -2 -- ExecProcess: return at once, run minimised
local JOBS_SUBDIR = "jukebox-bridge"
local CLIENT_NAME = "jukebox-bridge"
local SHELL_NOT_FOUND = 127

local function is_windows()
  return reaper.GetOS():match("^Win") ~= nil
end

local function join(dir, name)
  local sep = is_windows() and "\\" or "/"
  if dir:sub(-1) == "/" or dir:sub(-1) == "\\" then
    return dir .. name
  end
  return dir .. sep .. name
end

-- The folder holding the action files (this file is lib/jukebox_bridge/transport.lua below it).
local function scripts_dir()
  local source = debug.getinfo(1, "S").source:gsub("^@", "")
  return source:match("^(.*[/\\])lib[/\\]jukebox_bridge[/\\][^/\\]+$") or ""
end

function M.jobs_dir(cfg)
  local dir = cfg.jobs_dir
  if dir == nil or dir == "" then
    local temp = is_windows() and (os.getenv("TEMP") or os.getenv("TMP")) or os.getenv("TMPDIR") or "/tmp"
    dir = join(temp, JOBS_SUBDIR)
  end
  reaper.RecursiveCreateDirectory(dir, 0)
  return dir
end

-- Quoting for the launcher's shell.
local function sh_quote(text)
  return "'" .. text:gsub("'", "'\\''") .. "'"
end

local function cmd_quote(text)
  return '"' .. text:gsub("%%", "%%%%") .. '"'
end

local function quote(text)
  return is_windows() and cmd_quote(text) or sh_quote(text)
end

-- Where the client is looked for when the setting is empty, in order; the last is a bare name (PATH).
function M.client_candidates()
  local root = scripts_dir() .. ".."
  local home = os.getenv("HOME") or os.getenv("USERPROFILE") or ""
  if is_windows() then
    return { join(root, ".venv\\Scripts\\jukebox-bridge.exe"), CLIENT_NAME }
  end
  return { join(root, ".venv/bin/jukebox-bridge"), join(home, ".local/bin/jukebox-bridge"), CLIENT_NAME }
end

-- The client as a launcher-ready command prefix: the setting if given (a path is quoted, anything
-- else is used as typed, e.g. "python -m jukebox_bridge.cli"), else the first candidate that exists.
function M.client_command(cfg)
  local setting = cfg.client or ""
  if setting ~= "" then
    return reaper.file_exists(setting) and quote(setting) or setting
  end
  local candidates = M.client_candidates()
  for i = 1, #candidates - 1 do
    if reaper.file_exists(candidates[i]) then
      return quote(candidates[i])
    end
  end
  return CLIENT_NAME
end

local job_counter = 0

local function job_files(dir)
  -- Lua 5.3 does not seed math.random, so the key mixes the clock's fraction and a counter instead.
  job_counter = job_counter + 1
  local micros = math.floor((reaper.time_precise() % 1) * 1e6)
  local key = string.format("%d-%06d-%d", os.time(), micros, job_counter)
  local base = join(dir, "job-" .. key)
  return {
    key = key,
    request = base .. ".request.json",
    status = base .. ".status.json",
    log = base .. ".log",
    launcher = base .. (is_windows() and ".cmd" or ".sh"),
  }
end

local function client_failed_json(message)
  return json.encode({ state = "failed", takes = json.array(), error = { code = "client_failed", message = message } })
end

local function sh_launcher(client, args, files)
  local not_found = client_failed_json("Could not run the Jukebox Bridge client (" .. client .. "). "
    .. "Set 'Client command' in Jukebox Bridge - Settings to the full path of jukebox-bridge.")
  local other = client_failed_json("The Jukebox Bridge client stopped before reporting; see " .. files.log)
  local status, tmp = sh_quote(files.status), sh_quote(files.status .. ".tmp")
  return table.concat({
    "#!/bin/sh",
    "# Jukebox Bridge job launcher, written by the ReaScript (safe to delete).",
    client .. " " .. args .. " >>" .. sh_quote(files.log) .. " 2>&1",
    "code=$?",
    "if [ ! -f " .. status .. " ]; then",
    "  if [ $code -eq " .. SHELL_NOT_FOUND .. " ]; then printf '%s' " .. sh_quote(not_found) .. " > " .. tmp .. ";",
    "  else printf '%s' " .. sh_quote(other) .. " > " .. tmp .. "; fi",
    "  mv -f " .. tmp .. " " .. status,
    "fi",
    "",
  }, "\n")
end

local function cmd_launcher(client, args, files)
  local failed = client_failed_json("The Jukebox Bridge client could not start or stopped before reporting. "
    .. "Set 'Client command' in Jukebox Bridge - Settings; see the log " .. files.log)
  failed = failed:gsub("%%", "%%%%"):gsub("[&|<>^]", "^%0")
  local status = cmd_quote(files.status)
  return table.concat({
    "@echo off",
    "rem Jukebox Bridge job launcher, written by the ReaScript (safe to delete).",
    "chcp 65001 >nul",
    client .. " " .. args .. " >>" .. cmd_quote(files.log) .. " 2>&1",
    "if not exist " .. status .. " (",
    "  >" .. cmd_quote(files.status .. ".tmp") .. " echo " .. failed,
    "  move /y " .. cmd_quote(files.status .. ".tmp") .. " " .. status .. " >nul",
    ")",
    "",
  }, "\r\n")
end

-- The launcher's text for `client request VERB ...`.
function M.launcher_text(client, verb, cfg, files)
  local args = table.concat({
    "request", quote(verb),
    "--host", quote(cfg.host), "--port", quote(tostring(cfg.port)),
    "--json", quote("@" .. files.request), "--status-file", quote(files.status),
  }, " ")
  if is_windows() then
    return cmd_launcher(client, args, files)
  end
  return sh_launcher(client, args, files)
end

local function write_file(path, text)
  local f, err = io.open(path, "wb")
  if not f then
    return nil, err
  end
  f:write(text)
  f:close()
  return true
end

-- ExecProcess command line that runs a launcher (double quotes: no path we write contains one).
function M.exec_command(launcher)
  if is_windows() then
    return 'cmd.exe /C "' .. launcher .. '"'
  end
  return '/bin/sh "' .. launcher .. '"'
end

-- Starts `jukebox-bridge request VERB` in the background; returns a job handle, or nil and a message.
function M.start(verb, fields, cfg)
  local dir = M.jobs_dir(cfg)
  if dir:find('"', 1, true) then
    return nil, "The job files folder must not contain a double quote: " .. dir
  end
  local files = job_files(dir)
  local ok, err = write_file(files.request, json.encode(fields))
  if ok then
    ok, err = write_file(files.launcher, M.launcher_text(M.client_command(cfg), verb, cfg, files))
  end
  if not ok then
    return nil, "Could not write the job files in " .. dir .. ": " .. tostring(err)
  end
  local command = M.exec_command(files.launcher)
  if reaper.ExecProcess(command, NO_WAIT_MINIMIZED) == nil then
    return nil, "REAPER could not start the Jukebox Bridge client (" .. command .. ")."
  end
  return { verb = verb, files = files, command = command, started = reaper.time_precise() }
end

-- The job's latest status table, or nil while the client has not written one yet.
function M.read_status(job)
  local f = io.open(job.files.status, "rb")
  if not f then
    return nil
  end
  local text = f:read("a")
  f:close()
  local status = json.try_decode(text)
  if type(status) ~= "table" or type(status.state) ~= "string" then
    return nil
  end
  return status
end

-- Removes the job's files; the log is kept when asked (it is named in failure messages).
function M.cleanup(job, keep_log)
  local files = job.files
  for _, path in ipairs({ files.request, files.status, files.launcher }) do
    os.remove(path)
  end
  if not keep_log then
    os.remove(files.log)
  end
end

return M

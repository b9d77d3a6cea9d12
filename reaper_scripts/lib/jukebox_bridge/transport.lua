-- @description Jukebox Bridge library: talk to the engine through the jukebox-bridge client and a status file
-- @version 0.2.0
-- @author Jukebox Bridge
-- @noindex
--
-- Lua in REAPER has no sockets, so each request runs the project's command-line client in the
-- background (reaper.ExecProcess with timeout -2):
--
--   jukebox-bridge request VERB --host H --port P --json @REQUEST.json --status-file STATUS.json
--
-- The client sends the OSC request, follows the job and rewrites STATUS.json atomically, with a
-- heartbeat at least every few seconds; the job runner polls that file from its defer loop. The
-- command goes through a small launcher script (sh on macOS/Linux, cmd on Windows, started there by a
-- windowless VBScript so no console window opens per job) so quoting is the shell's, never
-- ExecProcess's. When the client ends, the launcher writes its exit code to EXIT: a job whose status
-- is not final by then failed, and the code says why.
--
-- Job files live under REAPER's resource folder (GetResourcePath() is UTF-8 on every system, unlike
-- %TEMP% read through Lua's os.getenv, which is ANSI on Windows and breaks for non-ASCII user names).

local json = require("jukebox_bridge.json")

local M = {}

local NO_WAIT_MINIMIZED = -2 -- ExecProcess: return at once, run minimised
local JOBS_SUBDIR = { "Data", "jukebox-bridge", "jobs" }
local CLIENT_NAME = "jukebox-bridge"
M.NOT_FOUND_CODES = { [127] = true, [9009] = true } -- sh: command not found; cmd: not recognized

local function is_windows()
  return reaper.GetOS():match("^Win") ~= nil
end

local function join(dir, ...)
  local sep = is_windows() and "\\" or "/"
  for _, name in ipairs({ ... }) do
    if dir:sub(-1) == "/" or dir:sub(-1) == "\\" then
      dir = dir .. name
    else
      dir = dir .. sep .. name
    end
  end
  return dir
end

-- The folder holding the action files (this file is lib/jukebox_bridge/transport.lua below it).
function M.scripts_dir()
  local source = debug.getinfo(1, "S").source:gsub("^@", "")
  return source:match("^(.*[/\\])lib[/\\]jukebox_bridge[/\\][^/\\]+$") or ""
end

function M.jobs_dir(cfg)
  local dir = cfg.jobs_dir
  if dir == nil or dir == "" then
    dir = join(reaper.GetResourcePath(), table.unpack(JOBS_SUBDIR))
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

-- The user's home folder. On Windows it is taken from the resource path when that is the standard
-- ...\AppData\Roaming\REAPER (UTF-8), since %USERPROFILE% through os.getenv is ANSI there.
local function home_dir()
  if is_windows() then
    local home = reaper.GetResourcePath():match("^(.*)[/\\][Aa]pp[Dd]ata[/\\][Rr]oaming[/\\][^/\\]+$")
    return home or os.getenv("USERPROFILE") or ""
  end
  return os.getenv("HOME") or ""
end

-- Where the client is looked for when the setting is empty, in order; the last is a bare name (PATH).
-- pipx puts it in ~/.local/bin on every system (or $PIPX_BIN_DIR).
function M.client_candidates()
  local root = M.scripts_dir() .. ".."
  local home = home_dir()
  local pipx_bin = os.getenv("PIPX_BIN_DIR")
  local list = {}
  if is_windows() then
    list[#list + 1] = join(root, ".venv", "Scripts", "jukebox-bridge.exe")
    if pipx_bin and pipx_bin ~= "" then
      list[#list + 1] = join(pipx_bin, "jukebox-bridge.exe")
    end
    list[#list + 1] = join(home, ".local", "bin", "jukebox-bridge.exe")
  else
    list[#list + 1] = join(root, ".venv", "bin", "jukebox-bridge")
    if pipx_bin and pipx_bin ~= "" then
      list[#list + 1] = join(pipx_bin, "jukebox-bridge")
    end
    list[#list + 1] = join(home, ".local", "bin", "jukebox-bridge")
  end
  list[#list + 1] = CLIENT_NAME
  return list
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

local SEQUENCE_SECTION, SEQUENCE_KEY = "JukeboxBridge", "job_sequence"

-- A job key unique across every script of this REAPER session: the clock plus a counter kept in
-- (process-wide) ext state, since each script has its own Lua state and Lua 5.3 seeds no random.
local function job_files(dir)
  local sequence = (tonumber(reaper.GetExtState(SEQUENCE_SECTION, SEQUENCE_KEY)) or 0) + 1
  reaper.SetExtState(SEQUENCE_SECTION, SEQUENCE_KEY, tostring(sequence), false)
  local micros = math.floor((reaper.time_precise() % 1) * 1e6)
  local key = string.format("%d-%06d-%d", os.time(), micros, sequence)
  local base = join(dir, "job-" .. key)
  return {
    key = key,
    request = base .. ".request.json",
    status = base .. ".status.json",
    exit = base .. ".exit",
    log = base .. ".log",
    spec = base .. ".job.json",
    launcher = base .. (is_windows() and ".cmd" or ".sh"),
    hidden = is_windows() and (base .. ".vbs") or nil,
  }
end

local function sh_launcher(client, args, files)
  local exit, tmp = sh_quote(files.exit), sh_quote(files.exit .. ".tmp")
  return table.concat({
    "#!/bin/sh",
    "# Jukebox Bridge job launcher, written by the ReaScript (safe to delete).",
    client .. " " .. args .. " >>" .. sh_quote(files.log) .. " 2>&1",
    "code=$?",
    "printf '%s\\n' \"$code\" > " .. tmp .. " && mv -f " .. tmp .. " " .. exit,
    "",
  }, "\n")
end

local function cmd_launcher(client, args, files)
  local exit, tmp = cmd_quote(files.exit), cmd_quote(files.exit .. ".tmp")
  return table.concat({
    "@echo off",
    "rem Jukebox Bridge job launcher, written by the ReaScript (safe to delete).",
    "chcp 65001 >nul",
    client .. " " .. args .. " >>" .. cmd_quote(files.log) .. " 2>&1",
    "set code=%ERRORLEVEL%",
    ">" .. tmp .. " echo %code%",
    "move /y " .. tmp .. " " .. exit .. " >nul",
    "",
  }, "\r\n")
end

-- UTF-8 -> UTF-16LE with a byte order mark: the encoding Windows Script Host reads for any path.
local function utf16le(text)
  local out = { "\255\254" }
  for _, code in utf8.codes(text) do
    if code >= 0x10000 then
      code = code - 0x10000
      local high, low = 0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)
      out[#out + 1] = string.char(high & 0xFF, high >> 8, low & 0xFF, low >> 8)
    else
      out[#out + 1] = string.char(code & 0xFF, code >> 8)
    end
  end
  return table.concat(out)
end

-- A VBScript that runs the .cmd launcher with no window (WScript.Shell.Run, window style 0).
function M.hidden_launcher_text(files)
  local command = 'cmd.exe /D /C ""' .. files.launcher .. '""'
  return table.concat({
    "' Jukebox Bridge: runs the job launcher without a console window (safe to delete).",
    'CreateObject("WScript.Shell").Run "' .. command:gsub('"', '""') .. '", 0, False',
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
M.write_file = write_file

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local text = f:read("a")
  f:close()
  return text
end
M.read_file = read_file

-- ExecProcess command line that runs a launcher (double quotes: no path we write contains one).
function M.exec_command(files)
  if is_windows() then
    return 'wscript.exe //B //Nologo "' .. files.hidden .. '"'
  end
  return '/bin/sh "' .. files.launcher .. '"'
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
  if ok and files.hidden then
    ok, err = write_file(files.hidden, utf16le(M.hidden_launcher_text(files)))
  end
  if not ok then
    return nil, "Could not write the job files in " .. dir .. ": " .. tostring(err)
  end
  local command = M.exec_command(files)
  if reaper.ExecProcess(command, NO_WAIT_MINIMIZED) == nil then
    return nil, "REAPER could not start the Jukebox Bridge client (" .. command .. ")."
  end
  return { verb = verb, files = files, command = command, started = reaper.time_precise() }
end

-- The job's latest status table (nil while the client has not written a whole one yet), and the
-- file's raw text (nil if there is no file).
function M.read_status(job)
  local text = read_file(job.files.status)
  if not text then
    return nil, nil
  end
  local status = json.try_decode(text)
  if type(status) ~= "table" or type(status.state) ~= "string" then
    return nil, text
  end
  return status, text
end

-- The client's exit code once it has ended (written by the launcher), else nil.
function M.read_exit_code(job)
  local text = read_file(job.files.exit)
  return text and tonumber(text) or nil
end

-- Removes the job's files; the log is kept when asked (it is named in failure messages).
function M.cleanup(job, keep_log)
  local files = job.files
  for _, key in ipairs({ "request", "status", "exit", "launcher", "hidden", "spec" }) do
    if files[key] then
      os.remove(files[key])
    end
  end
  if not keep_log then
    os.remove(files.log)
  end
end

return M

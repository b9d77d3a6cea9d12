-- Shared test helpers: run an action file against a fake reaper, find the job it started, play the
-- client's status file.

local Fake = require("fake_reaper")

local H = {}

-- The specs must run under the Lua that REAPER embeds: 5.4 in REAPER 7 (the pytest wrapper may ask
-- for another version through JB_EXPECT_LUA, e.g. "Lua 5.3" for REAPER 6).
H.EXPECTED_LUA = os.getenv("JB_EXPECT_LUA") or "Lua 5.4"
assert(_VERSION == H.EXPECTED_LUA, "these specs must run under " .. H.EXPECTED_LUA .. ", not " .. _VERSION)

local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
H.REPO = os.getenv("JB_REPO") or (here .. "../../../")
H.SCRIPTS = H.REPO .. "reaper_scripts/"
H.SECTION = "JukeboxBridge"

function H.shell_quote(text)
  return "'" .. text:gsub("'", "'\\''") .. "'"
end

function H.temp_dir()
  local path = os.tmpname()
  os.remove(path)
  assert(os.execute("mkdir -p " .. H.shell_quote(path)))
  return path
end

function H.read_file(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

function H.file_is_wav(path)
  local f = io.open(path, "rb")
  if not f then
    return false
  end
  local head = f:read(12) or ""
  f:close()
  return head:sub(1, 4) == "RIFF" and head:sub(9, 12) == "WAVE"
end

function H.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- The library's modules are reloaded for every script run, as REAPER gives each script its own Lua state.
local function is_library(name)
  return name == "jukebox_bridge" or name:match("^jukebox_bridge%.") ~= nil
end

local function forget_library()
  for name in pairs(package.loaded) do
    if is_library(name) then
      package.loaded[name] = nil
    end
  end
end

-- Runs a script file in a fresh library state (a script started from inside another one, as the job
-- runner is, gets its own modules; the caller's are put back afterwards).
local function load_script(fake, path)
  local saved = {}
  for name, mod in pairs(package.loaded) do
    if is_library(name) then
      saved[name] = mod
    end
  end
  forget_library()
  _G.reaper, _G.gfx = fake.reaper, fake.gfx
  local ok, err = pcall(dofile, path)
  forget_library()
  for name, mod in pairs(saved) do
    package.loaded[name] = mod
  end
  if not ok then
    error(err, 0)
  end
end

function H.json()
  forget_library()
  package.path = H.SCRIPTS .. "lib/?.lua;" .. package.path
  return require("jukebox_bridge.json")
end

-- A fake with an empty project whose job files go to a fresh temp folder.
function H.new_fake()
  local fake = Fake.new()
  fake.script_loader = function(path) load_script(fake, path) end
  fake.jobs_dir = H.temp_dir()
  fake.ext[H.SECTION .. "/jobs_dir"] = { value = fake.jobs_dir, persist = true }
  fake.ext[H.SECTION .. "/client"] = { value = "jukebox-bridge-under-test", persist = true }
  return fake
end

-- Removes the fake's job folder (call from after_each).
function H.cleanup(fake)
  if fake and fake.jobs_dir and fake.jobs_dir:match("^/tmp/") then
    os.execute("rm -rf " .. H.shell_quote(fake.jobs_dir))
  end
end

function H.set_setting(fake, key, value)
  fake.ext[H.SECTION .. "/" .. key] = { value = tostring(value), persist = true }
end

function H.action_file(name)
  return H.SCRIPTS .. "Jukebox Bridge - " .. name .. ".lua"
end

H.RUNNER = "Job runner"

-- Runs one action file as REAPER would (globals `reaper` and `gfx`, fresh modules).
function H.run_action(fake, name)
  fake:run_script(H.action_file(name))
end

-- Whether the job runner script is running (has deferred work queued).
function H.runner_running(fake)
  return fake:is_running(H.action_file(H.RUNNER))
end

local function unquote_sh(text)
  return (text:gsub("'\\''", "'"))
end

-- What the n-th ExecProcess started (default: the last): command, launcher text, verb, file paths,
-- and the decoded request JSON.
function H.job(fake, n)
  local exec = fake.execs[n or #fake.execs]
  assert(exec, "no ExecProcess call was made")
  local launcher = exec.command:match('^/bin/sh "(.*)"$')
  assert(launcher, "unexpected ExecProcess command: " .. exec.command)
  local text = H.read_file(launcher)
  local client_line = text:match("\n([^\n]* request [^\n]*)\n")
  local job = {
    command = exec.command, timeout = exec.timeout, launcher = launcher, text = text, line = client_line,
    verb = unquote_sh(client_line:match(" request '(.-)' %-%-host")),
    host = unquote_sh(client_line:match("%-%-host '(.-)'")),
    port = unquote_sh(client_line:match("%-%-port '(.-)'")),
    request_path = unquote_sh(client_line:match("%-%-json '@(.-)'")),
    status_path = unquote_sh(client_line:match("%-%-status%-file '(.-)'")),
  }
  job.request = H.json().decode(H.read_file(job.request_path))
  return job
end

-- Writes a status file the way the client does (temp file, then rename).
function H.write_status(path, status)
  local json = H.json()
  H.write_file(path .. ".tmp", json.encode(status))
  assert(os.rename(path .. ".tmp", path))
end

-- A status for a finished job with takes {path, length} at `position`.
function H.done_status(job_id, position, takes)
  local list = {}
  for i, t in ipairs(takes) do
    list[i] = { take = i, path = t.path, position = position, length = t.length }
  end
  return { state = "done", job_id = job_id, fraction = 1.0, stage = "writing", takes = list }
end

-- A standard project: track 1 "Guitar" with one selected audio item.
--   source: 30 s stereo WAV; item at 12.5 s, 4 s long, playing from 3.25 s at 1.5x.
function H.guitar_project(fake, overrides)
  overrides = overrides or {}
  local track = fake:add_track("Guitar")
  local source = fake:add_source({
    path = overrides.path or (fake.jobs_dir .. "/riff.wav"), length = overrides.source_length or 30,
    channels = overrides.channels or 2, type = overrides.type, srate = overrides.srate, missing = overrides.missing,
  })
  local item = fake:add_item(track, {
    position = overrides.position or 12.5, length = overrides.length or 4, selected = true,
    takes = { { source = source, startoffs = overrides.startoffs or 3.25, playrate = overrides.playrate or 1.5,
      name = "Riff", midi = overrides.midi } },
  })
  return track, item, source
end

return H

-- The scripts against the behaviour real REAPER has and a lenient fake would hide: project tabs,
-- errors in deferred code, dead clients, Windows paths and launchers, takes that do not play their
-- source as it is, tempo and metre maps, one job runner for every action.

local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
package.path = here .. "../helpers/?.lua;" .. package.path
local H = require("harness")

local CONTINUE = "Continue selected items"
local TITLE = "Jukebox Bridge - " .. CONTINUE

local function finish_job(fake, job, job_id, position, seconds, name)
  local render = fake:add_file(fake.jobs_dir .. "/" .. (name or job_id) .. ".wav", { length = seconds or 3 })
  H.write_status(job.status_path, H.done_status(job_id, position or 16.5, { { path = render, length = seconds or 3 } }))
  return render
end

local function text_of(fake)
  local all = {}
  for _, m in ipairs(fake.messages) do
    all[#all + 1] = m.text
  end
  return table.concat(all, "\n---\n")
end

describe("project tabs", function()
  local fake

  before_each(function()
    fake = H.new_fake()
  end)

  after_each(function()
    H.cleanup(fake)
  end)

  it("the take lands in the project the action started in, even after switching tabs", function()
    local track_a = H.guitar_project(fake)
    H.set_setting(fake, "target_track", "new")
    local project_a = fake.active
    H.run_action(fake, CONTINUE)
    local job = H.job(fake)
    local project_b = fake:add_project("Other.RPP")
    fake:add_track("B1", project_b)
    fake:switch_project(project_b) -- the user looks at another tab while the job runs
    fake.cursor = 77.0
    finish_job(fake, job, "j1")
    fake:run_until_idle(10)
    assert.are.same({}, fake.messages)
    assert.are.equal(1, #project_b.tracks) -- untouched
    assert.are.equal(0, #project_b.undo_points)
    assert.are.equal(3, #project_a.tracks - 0 + 1) -- Guitar, the new "Jukebox" track below it
    assert.are.equal("Jukebox", project_a.tracks[2].name)
    assert.are.equal(16.5, project_a.tracks[2].items[1].position)
    assert.are.equal(1, #project_a.undo_points)
    assert.is_not_nil(track_a)
  end)

  it("no call leans on 'the active project': proj is the captured pointer, never 0", function()
    H.guitar_project(fake)
    H.set_setting(fake, "target_track", "new")
    H.run_action(fake, CONTINUE)
    finish_job(fake, H.job(fake), "j1")
    fake:run_until_idle(10)
    local takes_proj = { "CountSelectedMediaItems", "GetSelectedMediaItem", "CountSelectedTracks", "GetSelectedTrack",
      "CountTracks", "GetTrack", "CountMediaItems", "GetMediaItem", "GetSet_LoopTimeRange2", "GetSetProjectInfo",
      "Undo_BeginBlock2", "Undo_EndBlock2", "InsertTrackInProject", "GetCursorPositionEx", "TimeMap2_timeToBeats",
      "TimeMap2_beatsToTime", "TimeMap_GetTimeSigAtTime", "ValidatePtr2" }
    for _, name in ipairs(takes_proj) do
      for _, call in ipairs(fake:calls_to(name)) do
        assert.are_not.equal(0, call.args[1], name .. " was called with project 0")
      end
    end
    for _, name in ipairs({ "GetCursorPosition", "Master_GetTempo", "InsertTrackAtIndex" }) do
      assert.are.equal(0, #fake:calls_to(name), name .. " acts on whatever tab is active")
    end
    assert.are.equal(1, #fake:calls_to("InsertTrackInProject"))
  end)

  it("a job whose project tab was closed reports where its renders are", function()
    H.guitar_project(fake)
    H.run_action(fake, CONTINUE)
    local job = H.job(fake)
    local other = fake:add_project("Other.RPP")
    fake:switch_project(other)
    table.remove(fake.projects, 1) -- the user closed the first tab
    local render = finish_job(fake, job, "j1")
    fake:run_until_idle(10)
    assert.truthy(text_of(fake):find("The project this job came from was closed. The renders are at:\n" .. render, 1, true))
  end)

  it("REAPER 6 (no InsertTrackInProject): a new track in the active project with InsertTrackAtIndex", function()
    fake.missing_api = { InsertTrackInProject = true }
    H.guitar_project(fake)
    H.set_setting(fake, "target_track", "new")
    H.run_action(fake, CONTINUE)
    finish_job(fake, H.job(fake), "j1")
    fake:run_until_idle(10)
    assert.are.same({}, fake.messages)
    assert.are.equal(1, #fake:calls_to("InsertTrackAtIndex"))
    assert.are.equal("Jukebox", fake.tracks[2].name)
  end)
end)

describe("no stuck UI state", function()
  local fake

  before_each(function()
    fake = H.new_fake()
  end)

  after_each(function()
    H.cleanup(fake)
  end)

  local function two_items()
    local track = H.guitar_project(fake)
    local source2 = fake:add_source({ path = fake.jobs_dir .. "/bass.wav", length = 20 })
    fake:add_item(track, { position = 30, length = 2, selected = true,
      takes = { { source = source2, startoffs = 1, playrate = 1, name = "Bass" } } })
    H.run_action(fake, CONTINUE)
    return track, H.job(fake, 1), H.job(fake, 2)
  end

  it("an API error while inserting: refresh and undo closed, a message, the other job still lands", function()
    local track, first, second = two_items()
    fake.fail_on.SetMediaItemTake_Source = "invalid source"
    finish_job(fake, first, "j1", 16.5, 3, "a")
    fake:run_deferred()
    fake.fail_on = {}
    assert.are.equal(0, fake.ui_refresh_depth)
    assert.are.equal(0, fake.active.undo_depth)
    assert.are.equal(1, #fake.messages)
    assert.truthy(fake.messages[1].text:find("REAPER refused the insertion (", 1, true), fake.messages[1].text)
    assert.truthy(fake.messages[1].text:find("invalid source", 1, true))
    assert.truthy(fake.messages[1].text:find("The renders are at:\n" .. fake.jobs_dir .. "/a.wav", 1, true))
    assert.are.equal("Jukebox Bridge: continue (1 take) (failed)", fake.active.undo_points[1].label)
    assert.is_true(H.runner_running(fake))
    finish_job(fake, second, "j2", 32, 2, "b")
    fake:run_until_idle(10)
    assert.are.equal(1, #fake.messages)
    assert.are.equal(0, fake.ui_refresh_depth)
    assert.are.equal(32.0, track.items[#track.items].position)
    assert.are.same({}, fake.script_errors)
  end)

  it("a job whose status breaks the runner's code ends alone; the other job goes on", function()
    local track, first, second = two_items()
    H.write_status(first.status_path, { state = "done", job_id = "j1", takes = "not a list" })
    fake:run_deferred()
    assert.are.equal(1, #fake.messages)
    assert.truthy(fake.messages[1].text:find('"Riff" on track 1: ', 1, true))
    assert.are.same({}, fake.script_errors)
    finish_job(fake, second, "j2", 32, 2, "b")
    fake:run_until_idle(10)
    assert.are.equal(32.0, track.items[#track.items].position)
  end)
end)

describe("no job polled forever", function()
  local fake

  before_each(function()
    fake = H.new_fake()
    H.guitar_project(fake)
  end)

  after_each(function()
    H.cleanup(fake)
  end)

  it("a client that stops writing its heartbeat is given up after the timeout, naming its log", function()
    H.run_action(fake, CONTINUE)
    local job = H.job(fake)
    for beat = 1, 20 do -- the client rewrites its status every 2 s while the engine works
      H.write_status(job.status_path, { state = "running", job_id = "j1", fraction = 0.1, takes = {},
        heartbeat = 1000.0 + 2 * beat })
      fake:run_deferred(2)
    end
    assert.are.same({}, fake.messages)
    fake:run_deferred(10)
    assert.are.same({}, fake.messages) -- 10 s of silence: still waiting
    fake:run_deferred(11)
    assert.are.equal(1, #fake.messages)
    assert.truthy(fake.messages[1].text:find("stopped reporting (no sign of life for 20 s)", 1, true))
    assert.truthy(fake.messages[1].text:find(job.status_path:gsub("status%.json$", "log"), 1, true))
    assert.are.equal(0, #fake.deferred)
  end)

  it("a client that exits without a final status fails by its exit code, at once", function()
    H.run_action(fake, CONTINUE)
    local job = H.job(fake)
    H.write_status(job.status_path, { state = "accepted", job_id = "j1", takes = {}, heartbeat = 1000.0 })
    fake:run_deferred()
    H.write_file(job.status_path:gsub("status%.json$", "exit"), "1\n") -- e.g. a Python traceback
    fake:run_deferred()
    assert.are.equal(1, #fake.messages)
    assert.truthy(fake.messages[1].text:find("stopped (exit code 1) before the job finished", 1, true))
    assert.truthy(fake.messages[1].text:find("[client_failed]", 1, true))
  end)

  it("a final status written before the exit code wins over it", function()
    H.run_action(fake, CONTINUE)
    local job = H.job(fake)
    finish_job(fake, job, "j1")
    H.write_file(job.status_path:gsub("status%.json$", "exit"), "0\n")
    fake:run_until_idle(10)
    assert.are.same({}, fake.messages)
    assert.are.equal(2, #fake.tracks[1].items)
  end)
end)

describe("paths that work for every user", function()
  local fake
  local real_getenv = os.getenv

  before_each(function()
    fake = H.new_fake()
    H.guitar_project(fake)
  end)

  after_each(function()
    os.getenv = real_getenv
    H.cleanup(fake)
  end)

  it("job files live under GetResourcePath() (UTF-8), never under TEMP/TMPDIR", function()
    fake.ext[H.SECTION .. "/jobs_dir"] = nil
    fake.resource_path = fake.jobs_dir .. "/Zoë Müller/REAPER"
    os.getenv = function(name)
      assert(not ({ TEMP = true, TMP = true, TMPDIR = true })[name], "read " .. name)
      return real_getenv(name)
    end
    H.run_action(fake, CONTINUE)
    local job = H.job(fake)
    local dir = fake.resource_path .. "/Data/jukebox-bridge/jobs/"
    assert.are.equal(dir, job.launcher:sub(1, #dir))
    assert.are.equal(dir, job.status_path:sub(1, #dir))
    assert.truthy(H.read_file(job.launcher))
  end)

  it("on Windows, finds the client where pipx installs it (~\\.local\\bin), home from the resource path", function()
    fake.os_name = "Win64"
    fake.ext[H.SECTION .. "/client"] = nil
    H.set_setting(fake, "jobs_dir", fake.jobs_dir .. "/")
    fake.resource_path = "C:\\Users\\Zoë\\AppData\\Roaming\\REAPER"
    local pipx = fake:add_file("C:\\Users\\Zoë\\.local\\bin\\jukebox-bridge.exe", {})
    os.getenv = function(name)
      if name == "USERPROFILE" then return "C:\\Users\\Zo?" end -- what an ANSI getenv gives back
      return real_getenv(name)
    end
    H.run_action(fake, CONTINUE)
    local vbs = fake.execs[1].command:match('"(.*)%.vbs"$')
    local text = H.read_file(vbs .. ".cmd")
    assert.truthy(text:find('\n"' .. pipx .. '" request "continue"', 1, true), text)
  end)
end)

describe("what plays is what is sent", function()
  local fake

  before_each(function()
    fake = H.new_fake()
  end)

  after_each(function()
    H.cleanup(fake)
  end)

  local function item_with(take)
    local track = fake:add_track("T")
    local file = fake:add_source({ path = fake.jobs_dir .. "/riff.wav", length = 30 })
    take.source = take.source or file
    take.name = take.name or "Riff"
    fake:add_item(track, { position = 4, length = take.length or 4, selected = true, takes = { take } })
    return file
  end

  for _, case in ipairs({
    { "stretch markers", { stretch_markers = 2 }, "has stretch markers; glue it first" },
    { "a playrate envelope", { envelopes = { Playrate = 3 } }, "has a playrate envelope; glue it first" },
    { "a pitch envelope", { envelopes = { Pitch = 1 } }, "has a pitch envelope; glue it first" },
  }) do
    it("refuses a take with " .. case[1] .. " ('glue first')", function()
      item_with(case[2])
      H.run_action(fake, CONTINUE)
      assert.are.equal(1, #fake.messages)
      assert.truthy(fake.messages[1].text:find(case[3], 1, true), fake.messages[1].text)
      assert.are.equal(0, #fake.execs)
    end)
  end

  it("an empty playrate envelope (no points) is fine", function()
    item_with({ envelopes = { Playrate = 0 } })
    H.run_action(fake, CONTINUE)
    assert.are.equal(0, #fake.messages)
    assert.are.equal(1, #fake.execs)
  end)

  it("resolves a section source (Item properties > Section) to its file and offset", function()
    local file = fake:add_source({ path = fake.jobs_dir .. "/riff.wav", length = 30 })
    item_with({ source = fake:add_section(file, 5, 10), startoffs = 1, length = 4 })
    H.run_action(fake, CONTINUE)
    local r = H.job(fake).request
    assert.are.equal(file.path, r.source)
    assert.are.equal(6.0, r.start)
    assert.are.equal(4.0, r.length)
  end)

  it("resolves nested sections, and refuses a take that runs past its section's end", function()
    local file = fake:add_source({ path = fake.jobs_dir .. "/riff.wav", length = 30 })
    local outer = fake:add_section(file, 5, 10)
    item_with({ source = fake:add_section(outer, 2, 6), startoffs = 1, length = 4 })
    H.run_action(fake, CONTINUE)
    assert.are.equal(5 + 2 + 1.0, H.job(fake).request.start)
    fake.tracks[1].items[1].takes[1].startoffs = 3 -- 3 + 4 > 6
    fake.messages = {}
    H.run_action(fake, CONTINUE)
    assert.truthy(text_of(fake):find("plays past the end of its section", 1, true), text_of(fake))
  end)
end)

describe("metre and tempo maps", function()
  local fake

  before_each(function()
    fake = H.new_fake()
    H.guitar_project(fake) -- the item ends at 16.5 s
  end)

  after_each(function()
    H.cleanup(fake)
  end)

  it("bars of 6/8 are six eighth notes: 2 bars at 120 BPM are 3 s", function()
    fake.num, fake.den = 6, 8
    H.set_setting(fake, "bars", "2")
    H.run_action(fake, CONTINUE)
    local r = H.job(fake).request
    assert.is_true(math.abs(r.seconds - 3.0) < 1e-9, tostring(r.seconds))
    assert.is_nil(r.bars)
  end)

  it("a tempo change on the way counts; the tempo sent is the one where the new material starts", function()
    fake.markers = { { time = 18.0, bpm = 60 } } -- bar 10 of 4/4 at 120 (2 s bars) starts at 18 s
    H.set_setting(fake, "bars", "2")
    H.run_action(fake, CONTINUE)
    local r = H.job(fake).request
    -- from 16.5 (bar 9, beat 1.0): to 18 s, then a 4-s bar, then 1 beat of 1 s: 23 s
    assert.is_true(math.abs(r.seconds - 6.5) < 1e-9, tostring(r.seconds))
    assert.are.equal(120.0, r.tempo)
  end)

  it("bars lasting longer than the engine renders are refused before anything is sent", function()
    fake.tempo = 40.0
    H.set_setting(fake, "bars", "100")
    H.run_action(fake, CONTINUE)
    assert.are.equal(0, #fake.execs)
    assert.truthy(text_of(fake):find("the engine renders at most 300 s", 1, true), text_of(fake))
  end)
end)

describe("one job runner", function()
  local fake
  local RUNNER = H.action_file(H.RUNNER)

  before_each(function()
    fake = H.new_fake()
    H.guitar_project(fake)
  end)

  after_each(function()
    H.cleanup(fake)
  end)

  it("every action hands its jobs to the one runner: no 'already running' prompt, started once", function()
    H.run_action(fake, CONTINUE)
    local first = H.job(fake)
    assert.is_true(H.runner_running(fake))
    fake:run_deferred()
    H.run_action(fake, CONTINUE) -- again, while the first job runs
    fake:run_deferred()
    H.run_action(fake, "Prime from selected items at edit cursor")
    local second, third = H.job(fake, 2), H.job(fake, 3)
    assert.are.same({}, fake.prompts)
    assert.are.equal(1, #fake:calls_to("Main_OnCommand"))
    assert.are.equal(RUNNER, fake.scripts[1])
    finish_job(fake, first, "j1", 16.5, 3, "a")
    finish_job(fake, second, "j2", 16.5, 3, "b")
    finish_job(fake, third, "j3", 0, 3, "c")
    fake:run_until_idle(10)
    assert.are.same({}, fake.messages)
    assert.are.equal(4, #fake.tracks[1].items)
    assert.is_false(H.runner_running(fake))
    assert.is_nil(fake.ext[H.SECTION .. "/runner_beat"]) -- an idle runner ends itself
  end)

  it("closing the runner cancels the jobs it follows (and, later, one it had not yet seen accepted)", function()
    local source2 = fake:add_source({ path = fake.jobs_dir .. "/bass.wav", length = 20 })
    fake:add_item(fake.tracks[1], { position = 30, length = 2, selected = true,
      takes = { { source = source2, startoffs = 1, playrate = 1, name = "Bass" } } })
    H.run_action(fake, CONTINUE)
    local accepted, waiting = H.job(fake, 1), H.job(fake, 2)
    H.write_status(accepted.status_path, { state = "running", job_id = "j9", fraction = 0.2, takes = {} })
    fake:run_deferred()
    fake:terminate(RUNNER) -- the user stops the script, or REAPER quits
    assert.are.equal(3, #fake.execs)
    local cancel = H.job(fake, 3)
    assert.are.equal("cancel", cancel.verb)
    assert.are.same({ job_id = "j9" }, cancel.request)
    assert.is_nil(fake.ext[H.SECTION .. "/runner_beat"])
    assert.are.equal(0, #fake.deferred)
    -- the second job is accepted later; the next runner start cancels it
    H.write_status(waiting.status_path, { state = "accepted", job_id = "j10", takes = {} })
    H.run_action(fake, "Cancel all jobs")
    local cancels = {}
    for i = 4, #fake.execs do
      cancels[#cancels + 1] = H.job(fake, i).request
    end
    assert.are.same({ { all = true }, { job_id = "j10" } }, cancels)
  end)
end)

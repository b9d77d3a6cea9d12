-- End to end: the real action files, a fake REAPER project, and ExecProcess REALLY running the
-- launcher, so the real jukebox-bridge client talks to a real engine (started by the pytest wrapper
-- tests/bridge/test_reaper_scripts.py, which passes its port and a source WAV in the environment).

local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
package.path = here .. "../helpers/?.lua;" .. package.path
local H = require("harness")

local function env(name)
  local value = os.getenv(name)
  assert(value and value ~= "", name .. " is not set; run this spec through tests/bridge/test_reaper_scripts.py")
  return value
end

local PORT = env("JB_E2E_PORT")
local SOURCE = env("JB_E2E_SOURCE")
local CLIENT = env("JB_E2E_CLIENT")
local DEAD_PORT = env("JB_E2E_DEAD_PORT")
local TIMEOUT = tonumber(os.getenv("JB_E2E_TIMEOUT") or "240")
local POLL = 0.2 -- seconds between defer rounds (really slept)

local function real_fake(port)
  local fake = H.new_fake()
  H.set_setting(fake, "client", CLIENT)
  H.set_setting(fake, "port", port or PORT)
  H.set_setting(fake, "quality", "draft")
  H.set_setting(fake, "seconds", "0.5")
  fake.on_exec = function(command, timeout)
    assert.are.equal(-2, timeout)
    assert(os.execute(command .. " >/dev/null 2>&1 &"))
  end
  fake.project_srate, fake.tempo = 48000, 120.0
  return fake
end

local function wait_for_jobs(fake)
  fake:run_until_idle(math.ceil(TIMEOUT / POLL), function()
    os.execute("sleep " .. POLL)
  end, POLL)
end

local function project_with_source(fake)
  local track = fake:add_track("Guitar")
  local source = fake:add_source({ path = SOURCE, length = 2.0, channels = 2, srate = 44100 })
  local item = fake:add_item(track, { position = 12.5, length = 1.0, selected = true,
    takes = { { source = source, startoffs = 0.5, playrate = 1, name = "Riff" } } })
  return track, item
end

describe("end to end with a running engine", function()
  local fake

  after_each(function()
    H.cleanup(fake)
  end)

  it("continues the selected item: two real takes in ONE new item where the source ends", function()
    fake = real_fake()
    H.set_setting(fake, "takes", "2")
    local track = project_with_source(fake)
    H.run_action(fake, "Continue selected items")
    local request = H.job(fake).request
    assert.are.same({ source = SOURCE, start = 0.5, length = 1.0, position = 12.5, seconds = 0.5, tempo = 120.0,
      sample_rate = 48000, channels = 2, takes = 2, quality = "draft" }, request)
    wait_for_jobs(fake)

    assert.are.same({}, fake.messages)
    assert.are.equal(2, #track.items)
    local new = track.items[2]
    assert.are.equal(12.5 + 1.0, new.position)
    assert.are.equal(2, #new.takes)
    local longest = 0
    for i, take in ipairs(new.takes) do
      local path = take.source.path
      assert.truthy(path:match("take" .. i .. "%-continue%.wav$"), path)
      assert.is_true(H.file_is_wav(path), path)
      assert.are.equal(48000, take.source.srate) -- read from the rendered file's header
      assert.is_true(math.abs(take.source.length - 0.5) < 0.05, "take length " .. take.source.length)
      longest = math.max(longest, take.source.length)
    end
    assert.are.equal(longest, new.length)
    assert.are.equal(1, #fake:calls_to("Undo_EndBlock2"))
    assert.are.equal("Jukebox Bridge: continue (2 takes)", fake:calls_to("Undo_EndBlock2")[1].args[2])
  end)

  it("Cancel last job cancels the running job for real; nothing is inserted", function()
    fake = real_fake()
    H.set_setting(fake, "quality", "full")
    H.set_setting(fake, "seconds", "30") -- long enough to be still running when the cancel arrives
    local track = project_with_source(fake)
    H.run_action(fake, "Continue selected items")
    local render = H.job(fake)
    local rounds = 0
    while not fake.ext[H.SECTION .. "/last_job_id"] do -- until the engine accepted the job
      rounds = rounds + 1
      assert(rounds * POLL < TIMEOUT, "the engine never accepted the job")
      os.execute("sleep " .. POLL)
      fake:run_deferred(POLL)
    end
    H.run_action(fake, "Cancel last job")
    local cancel = H.job(fake)
    assert.are.equal("cancel", cancel.verb)
    assert.are.same({ job_id = fake.ext[H.SECTION .. "/last_job_id"].value }, cancel.request)
    wait_for_jobs(fake)
    assert.are.same({}, fake.messages)
    assert.are.same({}, fake:mutations())
    assert.are.equal(1, #track.items)
    assert.is_nil(io.open(render.status_path, "rb")) -- the render's loop saw "cancelled" and cleaned up
  end)

  it("reports the engine's error for an unknown artist and inserts nothing", function()
    fake = real_fake()
    H.set_setting(fake, "artist", "No Such Artist Anywhere 123")
    project_with_source(fake)
    H.run_action(fake, "Continue selected items")
    wait_for_jobs(fake)
    assert.are.equal(1, #fake.messages)
    assert.truthy(fake.messages[1].text:find("[unknown_label]", 1, true), fake.messages[1].text)
    assert.are.same({}, fake:mutations())
  end)

  it("reports an engine that is not running and inserts nothing", function()
    fake = real_fake(DEAD_PORT)
    project_with_source(fake)
    H.run_action(fake, "Continue selected items")
    wait_for_jobs(fake)
    assert.are.equal(1, #fake.messages)
    assert.truthy(fake.messages[1].text:find("No Jukebox engine answered at 127.0.0.1:" .. DEAD_PORT, 1, true),
      fake.messages[1].text)
    assert.truthy(fake.messages[1].text:find("[engine_unreachable]", 1, true))
    assert.are.same({}, fake:mutations())
  end)
end)

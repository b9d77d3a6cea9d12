local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
package.path = here .. "../helpers/?.lua;" .. package.path
local H = require("harness")

local ACTION = "Continue selected items"
local TITLE = "Jukebox Bridge - " .. ACTION

describe("Continue selected items", function()
  local fake, track, item

  before_each(function()
    fake = H.new_fake()
    fake.tempo, fake.project_srate = 96.0, 48000
    track, item = H.guitar_project(fake)
  end)

  after_each(function()
    H.cleanup(fake)
  end)

  it("runs under the expected Lua (5.4 unless JB_EXPECT_LUA says otherwise)", function()
    assert.are.equal(H.EXPECTED_LUA, _VERSION)
  end)

  it("sends exactly the selected region: start = D_STARTOFFS, length = item length x playrate", function()
    H.run_action(fake, ACTION)
    local job = H.job(fake)
    assert.are.equal("continue", job.verb)
    assert.are.equal("127.0.0.1", job.host)
    assert.are.equal("9130", job.port)
    assert.are.same({
      source = fake.jobs_dir .. "/riff.wav", start = 3.25, length = 4 * 1.5, position = 12.5,
      seconds = 10.0, tempo = 96.0, sample_rate = 48000, channels = 2, takes = 1, quality = "full",
    }, job.request)
    assert.are.equal(-2, job.timeout)
    assert.are.equal(0, #fake:mutations())
  end)

  it("writes integers as integers and seconds as floats in the request file", function()
    H.run_action(fake, ACTION)
    local text = H.read_file(H.job(fake).request_path)
    assert.truthy(text:find('"sample_rate":48000[,}]'))
    assert.truthy(text:find('"takes":1[,}]'))
    assert.truthy(text:find('"length":6.0[,}]'))
    assert.truthy(text:find('"position":12.5[,}]'))
  end)

  it("passes the settings: labels, temperature, takes, quality, bars, engine address", function()
    H.set_setting(fake, "artist", "Nina Simone")
    H.set_setting(fake, "genre", "jazz")
    H.set_setting(fake, "temperature", "0.95")
    H.set_setting(fake, "adherence", "0")
    H.set_setting(fake, "takes", "3")
    H.set_setting(fake, "quality", "draft")
    H.set_setting(fake, "bars", "8")
    H.set_setting(fake, "host", "127.0.0.2")
    H.set_setting(fake, "port", "9555")
    H.run_action(fake, ACTION)
    local job = H.job(fake)
    assert.are.equal("127.0.0.2", job.host)
    assert.are.equal("9555", job.port)
    local r = job.request
    assert.are.equal("Nina Simone", r.artist)
    assert.are.equal("jazz", r.genre)
    assert.are.equal(0.95, r.temperature)
    assert.are.equal(0.0, r.adherence) -- 0 is a value (the model alone), not "the engine's"
    assert.are.equal(3, r.takes)
    assert.are.equal("draft", r.quality)
    assert.are.equal(20.0, r.seconds) -- 8 bars of 4/4 at 96 BPM, sent as seconds
    assert.is_nil(r.bars) -- the engine's `bars` assumes 4/4 at one tempo: never sent
  end)

  it("uses the device rate when the project does not force one, and a mono source's channel count", function()
    fake.project_srate_use, fake.device_srate = 0, "44100"
    fake.tracks, fake.files = {}, {}
    H.guitar_project(fake, { channels = 1 })
    H.run_action(fake, ACTION)
    local r = H.job(fake).request
    assert.are.equal(44100, r.sample_rate)
    assert.are.equal(1, r.channels)
  end)

  it("inserts the continuation as a new item starting exactly where the source item ends", function()
    H.run_action(fake, ACTION)
    local job = H.job(fake)
    local render = fake:add_file(fake.jobs_dir .. "/out-take1.wav", { length = 9.0 })
    fake:run_deferred()
    H.write_status(job.status_path, { state = "accepted", job_id = "job1", fraction = 0, takes = {} })
    fake:run_deferred()
    H.write_status(job.status_path, { state = "running", job_id = "job1", fraction = 0.5, stage = "sampling level 2",
      eta = 12, takes = {} })
    fake:run_deferred()
    assert.are.equal(0, #fake:mutations())
    H.write_status(job.status_path, H.done_status("job1", 18.5, { { path = render, length = 9.0 } }))
    fake:run_until_idle(10)

    assert.are.equal(2, #track.items)
    local new = track.items[2]
    assert.are.equal(12.5 + 4, new.position)
    assert.are.equal(9.0 / 1.5, new.length)
    assert.are.equal(1, #new.takes)
    local take = new.takes[1]
    assert.are.equal(render, take.source.path)
    assert.are.equal(0, take.startoffs)
    assert.are.equal(1.5, take.playrate)
    assert.are.equal(1, new.active)
    assert.are.equal(1, #fake:calls_to("Undo_BeginBlock2"))
    local undo = fake:calls_to("Undo_EndBlock2")
    assert.are.equal(1, #undo)
    assert.are.equal("Jukebox Bridge: continue (1 take)", undo[1].args[2])
    assert.are.equal(0, #fake.messages)
  end)

  it("places a take accepted with a warning (a truncated source it allowed) and says the warning", function()
    H.run_action(fake, ACTION)
    local job = H.job(fake)
    local render = fake:add_file(fake.jobs_dir .. "/w.wav", { length = 9.0 })
    local status = H.done_status("job1", 18.5, { { path = render, length = 9.0 } })
    status.warnings = { "riff.wav is truncated" }
    H.write_status(job.status_path, status)
    fake:run_until_idle(10)
    assert.are.equal(2, #track.items)
    assert.are.equal(1, #fake.messages)
    assert.truthy(fake.messages[1].text:find("placed, but riff.wav is truncated", 1, true))
  end)

  it("puts several takes into ONE item, sized to the longest", function()
    H.set_setting(fake, "takes", "3")
    H.run_action(fake, ACTION)
    local job = H.job(fake)
    local takes = {}
    for i, seconds in ipairs({ 9.0, 9.5, 8.0 }) do
      takes[i] = { path = fake:add_file(fake.jobs_dir .. "/t" .. i .. ".wav", { length = seconds }), length = seconds }
    end
    H.write_status(job.status_path, H.done_status("job1", 18.5, takes))
    fake:run_until_idle(10)
    assert.are.equal(2, #track.items)
    local new = track.items[2]
    assert.are.equal(3, #new.takes)
    for i = 1, 3 do
      assert.are.equal(takes[i].path, new.takes[i].source.path)
    end
    assert.are.equal(9.5 / 1.5, new.length)
    assert.are.equal(1, new.active)
    assert.are.equal(1, #fake:calls_to("Undo_EndBlock2"))
    assert.are.equal("Jukebox Bridge: continue (3 takes)", fake:calls_to("Undo_EndBlock2")[1].args[2])
  end)

  it("records the engine job id for 'Cancel last job'", function()
    H.run_action(fake, ACTION)
    local job = H.job(fake)
    H.write_status(job.status_path, { state = "accepted", job_id = "abc123", takes = {} })
    fake:run_deferred()
    assert.are.equal("abc123", fake.ext[H.SECTION .. "/last_job_id"].value)
    assert.are.equal(job.status_path, fake.ext[H.SECTION .. "/last_job_status"].value)
    assert.is_false(fake.ext[H.SECTION .. "/last_job_id"].persist)
  end)

  it("starts one job per selected item and inserts each with its own undo point", function()
    local source2 = fake:add_source({ path = fake.jobs_dir .. "/bass.wav", length = 20 })
    local item2 = fake:add_item(track, { position = 30, length = 2, selected = true,
      takes = { { source = source2, startoffs = 1, playrate = 1, name = "Bass" } } })
    H.run_action(fake, ACTION)
    assert.are.equal(2, #fake.execs)
    local first, second = H.job(fake, 1), H.job(fake, 2)
    assert.are.equal(12.5, first.request.position)
    assert.are.equal(30.0, second.request.position)
    assert.are.equal(2.0, second.request.length)
    local a = fake:add_file(fake.jobs_dir .. "/a.wav", { length = 4 })
    local b = fake:add_file(fake.jobs_dir .. "/b.wav", { length = 3 })
    H.write_status(second.status_path, H.done_status("j2", 32, { { path = b, length = 3 } }))
    fake:run_deferred()
    H.write_status(first.status_path, H.done_status("j1", 18.5, { { path = a, length = 4 } }))
    fake:run_until_idle(10)
    assert.are.equal(4, #track.items)
    assert.are.equal(32.0, track.items[3].position)
    assert.are.equal(16.5, track.items[4].position)
    assert.are.equal(2, #fake:calls_to("Undo_EndBlock2"))
    assert.is_not_nil(item2)
  end)

  it("shows progress in the job runner's gfx window and closes it when done", function()
    H.run_action(fake, ACTION)
    local job = H.job(fake)
    H.write_status(job.status_path, { state = "running", job_id = "j", fraction = 0.25, stage = "sampling level 2",
      eta = 75, takes = {} })
    fake:run_deferred()
    local init = fake.gfx_calls[1]
    assert.are.equal("init", init.name)
    assert.are.equal("Jukebox Bridge - Job runner", init.args[1])
    local drawn = {}
    for _, call in ipairs(fake.gfx_calls) do
      if call.name == "drawstr" then
        drawn[#drawn + 1] = call.args[1]
      end
    end
    assert.are.equal('"Riff" on track 1: sampling level 2 25%, about 1:15 left', drawn[#drawn])
    local render = fake:add_file(fake.jobs_dir .. "/r.wav", { length = 3 })
    H.write_status(job.status_path, H.done_status("j", 18.5, { { path = render, length = 3 } }))
    fake:run_until_idle(10)
    assert.are.equal("quit", fake.gfx_calls[#fake.gfx_calls].name)
  end)

  it("places the continuation on a new track below the source when the target is 'new'", function()
    H.set_setting(fake, "target_track", "new")
    fake:add_track("Drums")
    H.run_action(fake, ACTION)
    local render = fake:add_file(fake.jobs_dir .. "/r.wav", { length = 3 })
    H.write_status(H.job(fake).status_path, H.done_status("j", 18.5, { { path = render, length = 3 } }))
    fake:run_until_idle(10)
    assert.are.equal(3, #fake.tracks)
    assert.are.equal("Jukebox", fake.tracks[2].name)
    assert.are.equal("Drums", fake.tracks[3].name)
    assert.are.equal(1, #fake.tracks[2].items)
    assert.are.equal(16.5, fake.tracks[2].items[1].position)
    local flags = fake:calls_to("Undo_EndBlock2")[1].args[3]
    assert.are.equal(5, flags) -- items | track configuration
  end)

  it("removes its job files once the job is done", function()
    H.run_action(fake, ACTION)
    local job = H.job(fake)
    local render = fake:add_file(fake.jobs_dir .. "/r.wav", { length = 3 })
    H.write_status(job.status_path, H.done_status("j", 18.5, { { path = render, length = 3 } }))
    fake:run_until_idle(10)
    for _, path in ipairs({ job.status_path, job.request_path, job.launcher }) do
      assert.is_nil(io.open(path, "rb"), path)
    end
  end)
end)

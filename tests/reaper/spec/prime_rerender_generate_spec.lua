local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
package.path = here .. "../helpers/?.lua;" .. package.path
local H = require("harness")

describe("Prime from selected items at edit cursor", function()
  local ACTION = "Prime from selected items at edit cursor"
  local fake, track

  before_each(function()
    fake = H.new_fake()
    fake.cursor = 60.0
    track = H.guitar_project(fake)
  end)

  after_each(function()
    H.cleanup(fake)
  end)

  it("sends the whole item when there is no time selection", function()
    H.run_action(fake, ACTION)
    local job = H.job(fake)
    assert.are.equal("prime", job.verb)
    assert.are.equal(3.25, job.request.start)
    assert.are.equal(6.0, job.request.length)
    assert.are.equal(12.5, job.request.position)
    assert.are.equal(10.0, job.request.seconds)
  end)

  it("cuts the prompt to the time selection, in source seconds", function()
    fake.loop_start, fake.loop_end = 13.5, 20.0 -- item spans 12.5 .. 16.5
    H.run_action(fake, ACTION)
    local r = H.job(fake).request
    assert.are.equal(3.25 + (13.5 - 12.5) * 1.5, r.start)
    assert.are.equal((16.5 - 13.5) * 1.5, r.length)
    assert.are.equal(13.5, r.position)
  end)

  it("with no item selected, primes from the items under the time selection on the selected tracks", function()
    for _, item in ipairs(fake:all_items()) do
      item.selected = false
    end
    track.selected = true
    fake.loop_start, fake.loop_end = 10.0, 14.0
    H.run_action(fake, ACTION)
    local r = H.job(fake).request
    assert.are.equal(3.25, r.start)
    assert.are.equal((14.0 - 12.5) * 1.5, r.length)
  end)

  it("refuses an item outside the time selection", function()
    fake.loop_start, fake.loop_end = 30.0, 35.0
    H.run_action(fake, ACTION)
    assert.are.equal(1, #fake.messages)
    assert.truthy(fake.messages[1].text:find("lies outside the time selection", 1, true))
    assert.are.equal(0, #fake.execs)
    assert.are.same({}, fake:mutations())
  end)

  it("inserts the new material at the edit cursor as it was when the action ran", function()
    H.run_action(fake, ACTION)
    fake.cursor = 99.0 -- the user moves on while the job runs
    local render = fake:add_file(fake.jobs_dir .. "/p.wav", { length = 7.5 })
    H.write_status(H.job(fake).status_path, H.done_status("p1", 16.5, { { path = render, length = 7.5 } }))
    fake:run_until_idle(10)
    local new = track.items[2]
    assert.are.equal(60.0, new.position)
    assert.are.equal(7.5 / 1.5, new.length)
    assert.are.equal(1, #fake:calls_to("Undo_EndBlock2"))
    assert.are.equal("Jukebox Bridge: prime (1 take)", fake:calls_to("Undo_EndBlock2")[1].args[2])
  end)
end)

describe("Re-render selected items in artist and genre", function()
  local ACTION = "Re-render selected items in artist and genre"
  local TITLE = "Jukebox Bridge - " .. ACTION
  local fake, track, item

  before_each(function()
    fake = H.new_fake()
    track, item = H.guitar_project(fake)
    H.set_setting(fake, "artist", "Default Artist")
  end)

  after_each(function()
    H.cleanup(fake)
  end)

  it("asks for artist, genre and takes, prefilled from the settings", function()
    local seen
    fake.inputs = { function(title, count, captions, values)
      seen = { title = title, count = count, captions = captions, values = values }
      return true, "The Beatles\nrock\n2"
    end }
    H.run_action(fake, ACTION)
    assert.are.equal(TITLE, seen.title)
    assert.are.equal(3, seen.count)
    assert.are.equal("Artist (empty: model default),Genre (empty: model default),Takes (1-8),"
      .. "separator=\n,extrawidth=240", seen.captions)
    assert.are.equal("Default Artist\n\n1", seen.values)
    local r = H.job(fake).request
    assert.are.equal("rerender", H.job(fake).verb)
    assert.are.equal("The Beatles", r.artist)
    assert.are.equal("rock", r.genre)
    assert.are.equal(2, r.takes)
    assert.are.equal(3.25, r.start)
    assert.are.equal(6.0, r.length)
    assert.is_nil(r.seconds)
    assert.is_nil(r.bars)
    -- the dialog's answers are for this run only
    assert.are.equal("Default Artist", fake.ext[H.SECTION .. "/artist"].value)
  end)

  it("does nothing when the dialog is cancelled", function()
    fake.inputs = { { false, "" } }
    H.run_action(fake, ACTION)
    assert.are.equal(0, #fake.execs)
    assert.are.equal(0, #fake.messages)
    assert.are.same({}, fake:mutations())
  end)

  it("refuses an invalid number of takes", function()
    fake.inputs = { { true, "A\nB\n9" } }
    H.run_action(fake, ACTION)
    assert.are.equal(0, #fake.execs)
    assert.truthy(fake.messages[1].text:find("Takes (1-8) must be a whole number from 1 to 8", 1, true))
    assert.are.same({}, fake:mutations())
  end)

  it("adds the renders as new takes of the source item, keeping its position and length", function()
    fake.inputs = { { true, "The Beatles\nrock\n2" } }
    H.run_action(fake, ACTION)
    local a = fake:add_file(fake.jobs_dir .. "/r1.wav", { length = 6.0 })
    local b = fake:add_file(fake.jobs_dir .. "/r2.wav", { length = 6.0 })
    local takes = { { path = a, length = 6 }, { path = b, length = 6 } }
    H.write_status(H.job(fake).status_path, H.done_status("r", 12.5, takes))
    fake:run_until_idle(10)
    assert.are.equal(1, #track.items)
    assert.are.equal(3, #item.takes)
    assert.are.equal(a, item.takes[2].source.path)
    assert.are.equal(b, item.takes[3].source.path)
    assert.are.equal(1.5, item.takes[2].playrate)
    assert.are.equal(0, item.takes[2].startoffs)
    assert.are.equal("Jukebox rerender 1 - The Beatles, rock", item.takes[2].name)
    assert.are.equal(2, item.active)
    assert.are.equal(12.5, item.position)
    assert.are.equal(4, item.length)
    assert.are.equal(1, #fake:calls_to("Undo_EndBlock2"))
    assert.are.equal(4, fake:calls_to("Undo_EndBlock2")[1].args[3]) -- items only
  end)

  it("inserts nothing when the source item was deleted while the job ran", function()
    fake.inputs = { { true, "A\nB\n1" } }
    H.run_action(fake, ACTION)
    track.items = {}
    local a = fake:add_file(fake.jobs_dir .. "/r1.wav", { length = 6.0 })
    H.write_status(H.job(fake).status_path, H.done_status("r", 12.5, { { path = a, length = 6 } }))
    fake:run_until_idle(10)
    assert.are.equal(1, #fake.messages)
    assert.truthy(fake.messages[1].text:find("The source item was deleted", 1, true))
    assert.are.same({}, fake:mutations())
  end)
end)

describe("Generate from labels at edit cursor", function()
  local ACTION = "Generate from labels at edit cursor"
  local fake

  before_each(function()
    fake = H.new_fake()
    fake.cursor, fake.tempo = 8.0, 100.0
  end)

  after_each(function()
    H.cleanup(fake)
  end)

  it("sends labels, length, tempo and rate, with no source", function()
    fake.inputs = { { true, "Nina Simone\njazz\n20\n0" } }
    H.run_action(fake, ACTION)
    local job = H.job(fake)
    assert.are.equal("generate", job.verb)
    assert.are.same({ artist = "Nina Simone", genre = "jazz", seconds = 20.0, position = 8.0, tempo = 100.0,
      sample_rate = 48000, channels = 2, takes = 1, quality = "full" }, job.request)
  end)

  it("asks for bars instead of seconds when bars are set", function()
    fake.inputs = { { true, "\n\n10\n4" } }
    H.run_action(fake, ACTION)
    local r = H.job(fake).request
    assert.is_true(math.abs(r.seconds - 9.6) < 1e-9, tostring(r.seconds)) -- 4 bars of 4/4 at 100 BPM
    assert.is_nil(r.bars)
    assert.is_nil(r.artist)
  end)

  it("puts the result on the selected track at the cursor", function()
    fake:add_track("One")
    local two = fake:add_track("Two")
    two.selected = true
    fake.inputs = { { true, "A\nB\n10\n0" } }
    H.run_action(fake, ACTION)
    local g = fake:add_file(fake.jobs_dir .. "/g.wav", { length = 10 })
    H.write_status(H.job(fake).status_path, H.done_status("g", 8, { { path = g, length = 10 } }))
    fake:run_until_idle(10)
    assert.are.equal(1, #two.items)
    assert.are.equal(8.0, two.items[1].position)
    assert.are.equal(10, two.items[1].length)
    assert.are.equal(1, two.items[1].takes[1].playrate)
  end)

  it("creates a track when none is selected", function()
    fake.inputs = { { true, "A\nB\n10\n0" } }
    H.run_action(fake, ACTION)
    local g = fake:add_file(fake.jobs_dir .. "/g.wav", { length = 10 })
    H.write_status(H.job(fake).status_path, H.done_status("g", 8, { { path = g, length = 10 } }))
    fake:run_until_idle(10)
    assert.are.equal(1, #fake.tracks)
    assert.are.equal("Jukebox", fake.tracks[1].name)
    assert.are.equal(8.0, fake.tracks[1].items[1].position)
  end)
end)

local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
package.path = here .. "../helpers/?.lua;" .. package.path
local H = require("harness")

describe("Refine selected take", function()
  local ACTION = "Refine selected take"
  local fake, track, item

  before_each(function()
    fake = H.new_fake()
    -- a draft the engine rendered, trimmed in the project: it plays from 3.25 s of its file at 1.5x
    track, item = H.guitar_project(fake, { path = "/renders/ab12cd34-take1-continue.wav" })
  end)

  after_each(function()
    H.cleanup(fake)
  end)

  it("sends refine with the active take's file and nothing else, without a dialog", function()
    H.set_setting(fake, "artist", "Default Artist")
    H.run_action(fake, ACTION)
    local job = H.job(fake)
    assert.are.equal("refine", job.verb)
    assert.are.same({ source = "/renders/ab12cd34-take1-continue.wav" }, job.request)
    assert.are.equal(0, #fake.messages)
  end)

  it("adds the refined take to the draft's item, lined up with the draft", function()
    H.run_action(fake, ACTION)
    local full = fake:add_file(fake.jobs_dir .. "/f1.wav", { length = 30.0 })
    H.write_status(H.job(fake).status_path, H.done_status("f", 12.5, { { path = full, length = 30 } }))
    fake:run_until_idle(10)
    assert.are.equal(1, #track.items)
    assert.are.equal(2, #item.takes)
    assert.are.equal(full, item.takes[2].source.path)
    assert.are.equal(3.25, item.takes[2].startoffs) -- the draft take's offset into its file
    assert.are.equal(1.5, item.takes[2].playrate)
    assert.are.equal("Jukebox refine 1", item.takes[2].name)
    assert.are.equal(2, item.active)
    assert.are.equal(12.5, item.position)
    assert.are.equal(4, item.length)
    assert.are.equal("Jukebox Bridge: refine (1 take)", fake:calls_to("Undo_EndBlock2")[1].args[2])
  end)

  it("asks for a selected item first", function()
    item.selected = false
    H.run_action(fake, ACTION)
    assert.are.equal(0, #fake.execs)
    assert.truthy(fake.messages[1].text:find("Select one or more audio items first.", 1, true))
  end)
end)

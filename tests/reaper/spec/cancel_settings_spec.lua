local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
package.path = here .. "../helpers/?.lua;" .. package.path
local H = require("harness")

describe("Cancel actions", function()
  local fake

  before_each(function()
    fake = H.new_fake()
  end)

  after_each(function()
    H.cleanup(fake)
  end)

  it("Cancel all jobs runs `request cancel` with all = true and stays quiet on success", function()
    H.run_action(fake, "Cancel all jobs")
    local job = H.job(fake)
    assert.are.equal("cancel", job.verb)
    assert.are.same({ all = true }, job.request)
    H.write_status(job.status_path, { state = "done", takes = {},
      reply = { address = "/jukebox/cancelled", args = { 2 } } })
    fake:run_until_idle(10)
    assert.are.equal(0, #fake.messages)
    assert.are.same({}, fake:mutations())
    assert.are.equal(0, #fake.gfx_calls)
  end)

  it("says so when there was nothing to cancel", function()
    H.run_action(fake, "Cancel all jobs")
    H.write_status(H.job(fake).status_path, { state = "done", takes = {},
      reply = { address = "/jukebox/cancelled", args = { 0 } } })
    fake:run_until_idle(10)
    assert.truthy(fake.messages[1].text:find("no running job to cancel", 1, true))
    assert.are.equal("Jukebox Bridge - Cancel all jobs", fake.messages[1].title)
  end)

  it("reports an engine that is not running", function()
    H.run_action(fake, "Cancel all jobs")
    H.write_status(H.job(fake).status_path, { state = "failed", takes = {},
      error = { code = "engine_unreachable", message = "No Jukebox engine answered" } })
    fake:run_until_idle(10)
    assert.truthy(fake.messages[1].text:find("No Jukebox engine answered [engine_unreachable]", 1, true))
  end)

  it("Cancel last job cancels the newest job started from REAPER", function()
    H.guitar_project(fake)
    H.run_action(fake, "Continue selected items")
    local render_job = H.job(fake)
    H.write_status(render_job.status_path, { state = "running", job_id = "job42", fraction = 0.1, takes = {} })
    fake:run_deferred()
    H.run_action(fake, "Cancel last job")
    local cancel = H.job(fake)
    assert.are.equal("cancel", cancel.verb)
    assert.are.same({ job_id = "job42" }, cancel.request)
    -- the render's own loop then sees the cancellation and inserts nothing
    H.write_status(render_job.status_path, { state = "cancelled", job_id = "job42", takes = {} })
    H.write_status(cancel.status_path, { state = "done", takes = {},
      reply = { address = "/jukebox/cancelled", args = { 1 } } })
    fake:run_until_idle(10)
    assert.are.equal(0, #fake.messages)
    assert.are.same({}, fake:mutations())
  end)

  it("Cancel last job explains when no job was started", function()
    H.run_action(fake, "Cancel last job")
    assert.are.equal(0, #fake.execs)
    assert.truthy(fake.messages[1].text:find("No Jukebox job was started from REAPER", 1, true))
  end)

  it("Cancel last job explains when the last job already finished", function()
    local status_path = fake.jobs_dir .. "/old.status.json"
    H.write_status(status_path, { state = "done", job_id = "old", takes = {} })
    fake.ext[H.SECTION .. "/last_job_id"] = { value = "old", persist = false }
    fake.ext[H.SECTION .. "/last_job_status"] = { value = status_path, persist = false }
    H.run_action(fake, "Cancel last job")
    assert.are.equal(0, #fake.execs)
    assert.truthy(fake.messages[1].text:find("has already finished", 1, true))
  end)
end)

describe("Settings", function()
  local fake

  before_each(function()
    fake = H.new_fake()
    fake.ext = {} -- no stored settings: defaults
  end)

  after_each(function()
    H.cleanup(fake)
  end)

  it("shows every setting with its default and stores valid answers persistently", function()
    local seen
    fake.inputs = { function(title, count, captions, values)
      seen = { title = title, count = count, captions = captions, values = values }
      return true, table.concat({ "localhost", "9200", "/opt/jb/bin/jukebox-bridge", "Nina Simone", "jazz", "0.9",
        "0.5", "2", "DRAFT", "15", "0", "new", "/tmp/jobs" }, "\n")
    end }
    H.run_action(fake, "Settings")
    assert.are.equal("Jukebox Bridge - Settings", seen.title)
    assert.are.equal(13, seen.count)
    assert.are.equal(table.concat({ "127.0.0.1", "9130", "", "", "", "0", "-1", "1", "full", "10", "0", "source",
      "" },
      "\n"), seen.values)
    local function stored(key)
      local entry = fake.ext[H.SECTION .. "/" .. key]
      assert.is_true(entry.persist)
      return entry.value
    end
    assert.are.equal("localhost", stored("host"))
    assert.are.equal("9200", stored("port"))
    assert.are.equal("/opt/jb/bin/jukebox-bridge", stored("client"))
    assert.are.equal("Nina Simone", stored("artist"))
    assert.are.equal("0.9", stored("temperature"))
    assert.are.equal("0.5", stored("adherence"))
    assert.are.equal("draft", stored("quality"))
    assert.are.equal("new", stored("target_track"))
    assert.are.same({}, fake:mutations())
  end)

  it("saves nothing when a value is out of range, and says which", function()
    local answers = { "127.0.0.1", "70000", "", "", "", "0", "-1", "1", "full", "10", "0", "source", "" }
    fake.inputs = { { true, table.concat(answers, "\n") } }
    H.run_action(fake, "Settings")
    assert.are.same({}, fake.ext)
    local expected = "Engine port must be a whole number from 1 to 65535; got '70000'"
    assert.truthy(fake.messages[1].text:find(expected, 1, true))
  end)

  it("falls back to the default when a stored value is broken", function()
    H.set_setting(fake, "takes", "lots")
    H.set_setting(fake, "quality", "ultra")
    local seen
    fake.inputs = { function(_, _, _, values)
      seen = values
      return false, ""
    end }
    H.run_action(fake, "Settings")
    assert.truthy(seen:find("\n1\nfull\n", 1, true))
  end)
end)

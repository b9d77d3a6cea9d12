local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
package.path = here .. "../helpers/?.lua;" .. package.path
local H = require("harness")

-- Every bad case ends with one message box titled with the script's name and an untouched project:
-- no insertion, no undo point, no project setter called.
local function assert_refused(fake, title, fragment)
  assert.are.equal(1, #fake.messages, "expected exactly one message box")
  assert.are.equal(title, fake.messages[1].title)
  assert.are.equal(0, fake.messages[1].kind)
  if fragment then
    assert.truthy(fake.messages[1].text:find(fragment, 1, true), "message was: " .. fake.messages[1].text)
  end
  assert.are.same({}, fake:mutations())
  assert.are.equal(0, #fake:calls_to("Undo_BeginBlock2"))
end

local ACTIONS = {
  "Continue selected items",
  "Prime from selected items at edit cursor",
  "Re-render selected items in artist and genre",
}

describe("bad cases", function()
  local fake

  before_each(function()
    fake = H.new_fake()
  end)

  after_each(function()
    H.cleanup(fake)
  end)

  for _, action in ipairs(ACTIONS) do
    local title = "Jukebox Bridge - " .. action

    describe(action, function()
      it("refuses when nothing is selected", function()
        fake:add_track("Empty")
        H.run_action(fake, action)
        assert_refused(fake, title, "Select one or more audio items")
        assert.are.equal(0, #fake.execs)
      end)

      it("refuses a MIDI item", function()
        H.guitar_project(fake, { midi = true })
        H.run_action(fake, action)
        assert_refused(fake, title, '"Riff" on track 1 is a MIDI item')
        assert.are.equal(0, #fake.execs)
      end)

      it("refuses an item whose source file is missing", function()
        H.guitar_project(fake, { path = "/nonexistent/dir/riff.wav", missing = true })
        H.run_action(fake, action)
        assert_refused(fake, title, "missing source file: /nonexistent/dir/riff.wav")
        assert.are.equal(0, #fake.execs)
      end)

      it("refuses an offline source (REAPER cannot read it)", function()
        H.guitar_project(fake, { srate = 0, source_length = 0 })
        H.run_action(fake, action)
        assert_refused(fake, title, "offline source")
        assert.are.equal(0, #fake.execs)
      end)

      it("refuses an item with no source file name (offline or in-project media)", function()
        H.guitar_project(fake, { path = "" })
        H.run_action(fake, action)
        assert_refused(fake, title, "has no source file")
      end)
    end)
  end

  local CONTINUE = "Continue selected items"
  local TITLE = "Jukebox Bridge - " .. CONTINUE

  it("lists every bad item and sends nothing when one of several is bad", function()
    local track = H.guitar_project(fake)
    local midi = fake:add_source({ path = "", type = "MIDI" })
    fake:add_item(track, { position = 40, length = 2, selected = true,
      takes = { { source = midi, name = "Keys", midi = true } } })
    H.run_action(fake, CONTINUE)
    assert_refused(fake, TITLE, '"Keys" on track 1 is a MIDI item')
    assert.are.equal(0, #fake.execs)
  end)

  it("refuses an empty item (no take)", function()
    local track = fake:add_track("T")
    fake:add_item(track, { position = 1, length = 1, selected = true, takes = {} })
    H.run_action(fake, CONTINUE)
    assert_refused(fake, TITLE, "is an empty item")
  end)

  it("refuses a reversed take (a reversed section source)", function()
    local track = fake:add_track("T")
    local file = fake:add_source({ path = fake.jobs_dir .. "/riff.wav", length = 30 })
    fake:add_item(track, { position = 1, length = 2, selected = true,
      takes = { { source = fake:add_section(file, 0, 30, true), name = "Rev" } } })
    H.run_action(fake, CONTINUE)
    assert_refused(fake, TITLE, '"Rev" on track 1 plays its source reversed; glue it first')
  end)

  it("refuses a source format the engine cannot read", function()
    H.guitar_project(fake, { path = fake.jobs_dir .. "/clip.mov" })
    H.run_action(fake, CONTINUE)
    assert_refused(fake, TITLE, "is a .mov file")
  end)

  it("refuses an item that plays past the end of its source (looped)", function()
    H.guitar_project(fake, { source_length = 5, startoffs = 3, length = 4, playrate = 1 })
    H.run_action(fake, CONTINUE)
    assert_refused(fake, TITLE, "plays past the end of its source")
  end)

  it("refuses an item that starts before its source", function()
    H.guitar_project(fake, { startoffs = -0.5 })
    H.run_action(fake, CONTINUE)
    assert_refused(fake, TITLE, "starts before the beginning of its source")
  end)

  local function run_until_status(status)
    H.guitar_project(fake)
    H.run_action(fake, CONTINUE)
    local job = H.job(fake)
    fake:run_deferred()
    H.write_status(job.status_path, status)
    fake:run_until_idle(10)
    return job
  end

  it("reports an engine that is not running and inserts nothing", function()
    run_until_status({ state = "failed", takes = {}, error = { code = "engine_unreachable",
      message = "No Jukebox engine answered at 127.0.0.1:9130 within 3 s." } })
    assert_refused(fake, TITLE, "No Jukebox engine answered at 127.0.0.1:9130")
    assert.truthy(fake.messages[1].text:find("[engine_unreachable]", 1, true))
  end)

  it("reports a job error from the engine and inserts nothing", function()
    run_until_status({ state = "failed", job_id = "j1", takes = {}, error = { code = "unknown_label",
      message = "unknown artist 'Nina Simoen'; did you mean Nina Simone?" } })
    assert_refused(fake, TITLE, "did you mean Nina Simone? [unknown_label]")
  end)

  it("stays quiet about a cancelled job and inserts nothing", function()
    run_until_status({ state = "cancelled", job_id = "j1", takes = {},
      error = { code = "cancelled", message = "the job was cancelled" } })
    assert.are.equal(0, #fake.messages)
    assert.are.same({}, fake:mutations())
  end)

  it("refuses a finished job whose rendered file does not exist", function()
    run_until_status(H.done_status("j1", 18.5, { { path = fake.jobs_dir .. "/never-written.wav", length = 3 } }))
    assert_refused(fake, TITLE, "A rendered file is missing")
  end)

  it("reports REAPER failing to start the client", function()
    fake.exec_result = nil
    H.guitar_project(fake)
    H.run_action(fake, CONTINUE)
    assert_refused(fake, TITLE, "REAPER could not start the Jukebox Bridge client")
    assert.are.equal(0, #fake.deferred)
  end)

  it("gives up when the client never writes a status, naming its log", function()
    H.guitar_project(fake)
    H.run_action(fake, CONTINUE)
    local job = H.job(fake)
    fake:run_deferred()
    assert.are.equal(0, #fake.messages)
    fake:run_deferred(31)
    assert_refused(fake, TITLE, "did not report within 30 s")
    assert.truthy(fake.messages[1].text:find(job.status_path:gsub("status%.json$", "log"), 1, true))
    assert.are.equal(0, #fake.deferred)
  end)

  it("ignores a half-written status file and reads it once complete", function()
    H.guitar_project(fake)
    H.run_action(fake, CONTINUE)
    local job = H.job(fake)
    H.write_file(job.status_path, '{"state": "running", "fract')
    fake:run_deferred()
    assert.are.equal(0, #fake.messages)
    assert.are.equal(1, #fake.deferred)
  end)
end)

describe("the launcher, really run by /bin/sh", function()
  local fake

  before_each(function()
    fake = H.new_fake()
  end)

  after_each(function()
    H.cleanup(fake)
  end)

  it("writes a client_failed status when the client command does not exist", function()
    H.set_setting(fake, "client", "/nonexistent/bin/jukebox-bridge")
    H.guitar_project(fake)
    H.run_action(fake, "Continue selected items")
    local job = H.job(fake)
    assert.truthy(os.execute(job.command .. " >/dev/null 2>&1"))
    fake:run_until_idle(10)
    assert_refused(fake, "Jukebox Bridge - Continue selected items", "Could not run the Jukebox Bridge client")
    assert.truthy(fake.messages[1].text:find("[client_failed]", 1, true))
  end)

  it("keeps a path with spaces and quotes as one argument", function()
    local odd = fake.jobs_dir .. "/it's a \"dir\""
    assert(os.execute("mkdir -p " .. H.shell_quote(odd)))
    local recorder = odd .. "/record args.sh"
    H.write_file(recorder, '#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "$(dirname "$0")/args.txt"\n')
    assert(os.execute("chmod +x " .. H.shell_quote(recorder)))
    H.set_setting(fake, "client", recorder)
    H.guitar_project(fake)
    H.run_action(fake, "Continue selected items")
    local job = H.job(fake)
    assert.truthy(os.execute(job.command .. " >/dev/null 2>&1"))
    local args = H.read_file(odd .. "/args.txt")
    assert.are.equal(table.concat({ "request", "continue", "--host", "127.0.0.1", "--port", "9130",
      "--json", "@" .. job.request_path, "--status-file", job.status_path }, "\n") .. "\n", args)
  end)
end)

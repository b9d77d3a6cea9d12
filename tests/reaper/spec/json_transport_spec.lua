local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
package.path = here .. "../helpers/?.lua;" .. package.path
local H = require("harness")

describe("json", function()
  local json

  before_each(function()
    json = H.json()
  end)

  it("decodes a status exactly as bridge/client.py writes it (json.dumps, ensure_ascii)", function()
    local text = '{"verb": "continue", "request_id": "488a020254ab", "state": "done", "job_id": "9f1c", '
      .. '"fraction": 1.0, "stage": "writing", "eta": 0.0, "takes": [{"take": 1, "path": '
      .. '"/r/9f1c-take1-continue-caf\\u00e9 \\"q\\" \\\\ \\ud83c\\udfb5.wav", "position": 18.5, '
      .. '"length": 9.000000000000002}], "error": null, "reply": null}'
    local status = json.decode(text)
    assert.are.equal("done", status.state)
    assert.are.equal(1.0, status.fraction)
    assert.is_nil(status.error)
    assert.is_nil(status.reply)
    assert.are.equal(1, #status.takes)
    assert.are.equal(1, status.takes[1].take)
    assert.are.equal(math.type(1), math.type(status.takes[1].take))
    assert.are.equal('/r/9f1c-take1-continue-café "q" \\ 🎵.wav', status.takes[1].path)
    assert.are.equal(9.000000000000002, status.takes[1].length)
  end)

  it("decodes numbers, literals, nesting and every escape", function()
    assert.are.same({ a = { -1.5e-3, 2, true, false }, b = "\b\f\n\r\t/" },
      json.decode(' { "a" : [ -1.5e-3 , 2 , true , false ] , "b" : "\\b\\f\\n\\r\\t\\/" } '))
    assert.are.equal(json.null, json.decode("[null]")[1])
    assert.are.same({}, json.decode("[]"))
    assert.are.equal(1e300, json.decode("1E+300"))
  end)

  it("rejects malformed text with a message", function()
    for _, bad in ipairs({ '{"a": 1', '{"a" 1}', '[1,]', '"abc', '{"a": tru}', '1 2', '' }) do
      local value, err = json.try_decode(bad)
      assert.is_nil(value, bad)
      assert.truthy(err:match("^JSON: "), bad)
    end
  end)

  it("encodes request fields: sorted keys, integers, exact floats, escapes", function()
    assert.are.equal('{"a":1,"b":2.0,"c":0.1,"d":"x\\"y\\\\z\\n\\u0001","e":[1,2],"f":true,"g":[]}',
      json.encode({ g = json.array(), f = true, e = { 1, 2 }, d = 'x"y\\z\n\1', c = 0.1, b = 2.0, a = 1 }))
    for _, x in ipairs({ 1 / 3, 6.000000000000001, 12.5 + 4, 3.25 + 1.5 * 1.5, 1e-7, 123456789.123 }) do
      assert.are.equal(x, json.decode(json.encode(x)))
    end
    assert.has_error(function() json.encode(0 / 0) end)
    assert.has_error(function() json.encode(math.huge) end)
  end)

  it("round-trips UTF-8 text unchanged", function()
    local text = "Sigur Rós – ágætis byrjun 🎵"
    assert.are.equal(text, json.decode(json.encode(text)))
  end)
end)

describe("transport", function()
  local fake

  before_each(function()
    fake = H.new_fake()
    H.guitar_project(fake)
  end)

  after_each(function()
    H.cleanup(fake)
  end)

  it("launches the client through /bin/sh with a syntactically valid script", function()
    H.run_action(fake, "Continue selected items")
    local job = H.job(fake)
    assert.are.equal('/bin/sh "' .. job.launcher .. '"', job.command)
    assert.truthy(os.execute("sh -n " .. H.shell_quote(job.launcher)))
    assert.truthy(job.line:find("^jukebox%-bridge%-under%-test request 'continue' "))
  end)

  it("finds the client in the repository's .venv when the setting is empty", function()
    fake.ext[H.SECTION .. "/client"] = nil
    fake:add_file(H.SCRIPTS .. "../.venv/bin/jukebox-bridge", {})
    H.run_action(fake, "Continue selected items")
    local line = H.job(fake).line
    assert.truthy(line:find("^'[^']*reaper_scripts/%.%./%.venv/bin/jukebox%-bridge' request 'continue'"), line)
  end)

  it("falls back to jukebox-bridge on PATH when nothing else is found", function()
    fake.ext[H.SECTION .. "/client"] = nil
    local real_exists = fake._file_exists
    fake._file_exists = function(self, path)
      return not path:find("jukebox%-bridge$") and real_exists(self, path)
    end
    H.run_action(fake, "Continue selected items")
    assert.truthy(H.job(fake).line:find("^jukebox%-bridge request 'continue'"))
  end)

  it("on Windows: a cmd launcher started by a windowless VBScript (no console window per job)", function()
    fake.os_name = "Win64"
    H.set_setting(fake, "jobs_dir", fake.jobs_dir .. "/") -- keep the "\\"-joined files inside the temp folder
    H.set_setting(fake, "client", "C:\\Program Files\\jb\\jukebox-bridge.exe")
    fake:add_file("C:\\Program Files\\jb\\jukebox-bridge.exe", {})
    H.run_action(fake, "Continue selected items")
    local command = fake.execs[1].command
    local vbs = command:match('^wscript%.exe //B //Nologo "(.*%.vbs)"$')
    assert.is_not_nil(vbs, command)
    local launcher = vbs:gsub("%.vbs$", ".cmd")
    local text = H.read_file(launcher)
    assert.truthy(text:find('"C:\\Program Files\\jb\\jukebox-bridge.exe" request "continue" --host "127.0.0.1"',
      1, true))
    assert.truthy(text:find("\r\nset code=%ERRORLEVEL%\r\n", 1, true))
    assert.truthy(text:find('.exit.tmp" echo %code%', 1, true))
    -- the VBScript is UTF-16LE with a byte order mark, and runs the .cmd hidden (window style 0)
    local script = H.read_file(vbs)
    assert.are.equal("\255\254", script:sub(1, 2))
    local ascii = script:sub(3):gsub("(.)%z", "%1")
    assert.truthy(ascii:find('CreateObject("WScript.Shell").Run "cmd.exe /D /C """"' .. launcher .. '""""", 0, False',
      1, true), ascii)
  end)
end)

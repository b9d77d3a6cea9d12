-- @description Jukebox Bridge: cancel all jobs of the engine
-- @version 0.2.0
-- @author Jukebox Bridge
-- @noindex
-- @about
--   Cancels every queued or running job of the engine.
--   Installed with "Jukebox Bridge - Settings.lua"; see reaper_scripts/README.md.

local script_path = debug.getinfo(1, "S").source:gsub("^@", "")
package.path = (script_path:match("^(.*[/\\])") or "") .. "lib/?.lua;" .. package.path
local jukebox = require("jukebox_bridge")
local title = jukebox.script_title(script_path)
jukebox.cancel(title, "all")

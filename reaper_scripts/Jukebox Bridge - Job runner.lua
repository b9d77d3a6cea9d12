-- @description Jukebox Bridge: job runner (follows every job in the background; the actions start it)
-- @version 0.2.0
-- @author Jukebox Bridge
-- @noindex
-- @about
--   The one background script that follows every Jukebox job, shows their progress and inserts the
--   results. The other actions start it when needed; you never have to. Stopping it (run it again and
--   choose Terminate, or close REAPER) cancels the jobs it still follows.
--   Installed with "Jukebox Bridge - Settings.lua"; see reaper_scripts/README.md.

local script_path = debug.getinfo(1, "S").source:gsub("^@", "")
package.path = (script_path:match("^(.*[/\\])") or "") .. "lib/?.lua;" .. package.path
local jukebox = require("jukebox_bridge")
jukebox.run_jobs()

-- @description Jukebox Bridge: generate from artist and genre labels at the edit cursor
-- @version 0.2.0
-- @author Jukebox Bridge
-- @noindex
-- @about
--   Asks for an artist, a genre and a length, then generates new material and puts it at the edit cursor.
--   Installed with "Jukebox Bridge - Settings.lua"; see reaper_scripts/README.md.

local script_path = debug.getinfo(1, "S").source:gsub("^@", "")
package.path = (script_path:match("^(.*[/\\])") or "") .. "lib/?.lua;" .. package.path
local jukebox = require("jukebox_bridge")
local title = jukebox.script_title(script_path)
jukebox.generate_at_cursor(title)

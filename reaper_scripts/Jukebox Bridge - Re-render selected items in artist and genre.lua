-- @description Jukebox Bridge: re-render selected items in a chosen artist and genre
-- @version 0.2.0
-- @author Jukebox Bridge
-- @noindex
-- @about
--   Asks for an artist, a genre and a number of takes, then renders each selected audio item again in that
--   style and adds the results as new takes of the item.
--   Installed with "Jukebox Bridge - Settings.lua"; see reaper_scripts/README.md.

local script_path = debug.getinfo(1, "S").source:gsub("^@", "")
package.path = (script_path:match("^(.*[/\\])") or "") .. "lib/?.lua;" .. package.path
local jukebox = require("jukebox_bridge")
local title = jukebox.script_title(script_path)
jukebox.rerender_selected(title)

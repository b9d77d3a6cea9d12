-- @description Jukebox Bridge library: a small gfx window with one progress bar per job
-- @version 0.2.0
-- @author Jukebox Bridge
-- @noindex
--
-- The job runner owns it: one row per running job of every action. Closing the window only hides the
-- progress (until the next job is handed over): the jobs go on and their results are still inserted.

local M = {}

local WIDTH, MARGIN, ROW_HEIGHT, TEXT_HEIGHT, BAR_HEIGHT = 460, 10, 42, 18, 8
local ROWS = 6 -- rows the window is sized for
local FONT_SLOT, FONT_FACE, FONT_SIZE = 1, "Arial", 14
local FILLED = 1
local WINDOW_CLOSED = -1 -- gfx.getchar() once the user closed the window
local BACKGROUND = { 0.14, 0.14, 0.15 }
local TEXT = { 0.9, 0.9, 0.9 }
local TRACK = { 0.3, 0.3, 0.32 }
local FILL = { 0.35, 0.7, 0.45 }

local window_open = false

local function set_colour(rgb)
  gfx.set(rgb[1], rgb[2], rgb[3], 1)
end

local function clock_text(seconds)
  seconds = math.floor(seconds + 0.5)
  return string.format("%d:%02d", seconds // 60, seconds % 60)
end

-- One line about a job: its label, stage, percentage and time left.
function M.describe(job)
  local status = job.status
  if not status then
    return job.label .. ": starting"
  elseif status.state == "accepted" then
    return job.label .. ": queued"
  elseif status.state ~= "running" then
    return job.label .. ": " .. status.state
  end
  local text = string.format("%s: %s %d%%", job.label, status.stage or "", math.floor((status.fraction or 0) * 100))
  if type(status.eta) == "number" and status.eta >= 0 then
    text = text .. ", about " .. clock_text(status.eta) .. " left"
  end
  return text
end

function M.open(title)
  if window_open then
    return
  end
  gfx.init(title, WIDTH, 2 * MARGIN + ROWS * ROW_HEIGHT)
  gfx.setfont(FONT_SLOT, FONT_FACE, FONT_SIZE)
  window_open = true
end

local function draw_row(job, y)
  local width = gfx.w - 2 * MARGIN
  local fraction = job.status and job.status.fraction or 0
  set_colour(TEXT)
  gfx.x, gfx.y = MARGIN, y
  gfx.drawstr(M.describe(job))
  set_colour(TRACK)
  gfx.rect(MARGIN, y + TEXT_HEIGHT, width, BAR_HEIGHT, FILLED)
  set_colour(FILL)
  gfx.rect(MARGIN, y + TEXT_HEIGHT, math.floor(width * math.max(0, math.min(1, fraction))), BAR_HEIGHT, FILLED)
end

function M.draw(jobs)
  if not window_open then
    return
  end
  if gfx.getchar() == WINDOW_CLOSED then
    window_open = false
    return
  end
  set_colour(BACKGROUND)
  gfx.rect(0, 0, gfx.w, gfx.h, FILLED)
  for i, job in ipairs(jobs) do
    draw_row(job, MARGIN + (i - 1) * ROW_HEIGHT)
  end
  gfx.update()
end

function M.close()
  if window_open then
    gfx.quit()
    window_open = false
  end
end

return M

{
	"patcher": {
		"fileversion": 1,
		"appversion": {
			"major": 8,
			"minor": 6,
			"revision": 5,
			"architecture": "x64",
			"modernui": 1
		},
		"classnamespace": "box",
		"rect": [80.0, 100.0, 960.0, 720.0],
		"openrect": [0.0, 0.0, 0.0, 169.0],
		"openinpresentation": 1,
		"default_fontsize": 10.0,
		"default_fontface": 0,
		"default_fontname": "Arial Bold",
		"gridonopen": 1,
		"gridsize": [8.0, 8.0],
		"gridsnaponopen": 1,
		"objectsnaponopen": 1,
		"statusbarvisible": 2,
		"toolbarvisible": 1,
		"boxanimatetime": 500,
		"enablehscroll": 1,
		"enablevscroll": 1,
		"devicewidth": 560.0,
		"description": "Jukebox Bridge: continue, prime or re-render the selected audio clip with a local Jukebox engine.",
		"digest": "Continue, prime or re-render the selected clip with Jukebox",
		"tags": "jukebox",
		"style": "",
		"subpatcher_template": "",
		"assistshowspatchername": 0,
		"boxes": [
			{
				"box": {
					"id": "obj-1",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [640.0, 20.0, 200.0, 18.0],
					"text": "Audio passes through unchanged."
				}
			},
			{
				"box": {
					"id": "obj-2",
					"maxclass": "newobj",
					"numinlets": 2,
					"numoutlets": 2,
					"outlettype": ["signal", "signal"],
					"patching_rect": [640.0, 44.0, 50.0, 20.0],
					"text": "plugin~"
				}
			},
			{
				"box": {
					"id": "obj-3",
					"maxclass": "newobj",
					"numinlets": 2,
					"numoutlets": 2,
					"outlettype": ["signal", "signal"],
					"patching_rect": [640.0, 96.0, 50.0, 20.0],
					"text": "plugout~"
				}
			},
			{
				"box": {
					"id": "obj-4",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [20.0, 8.0, 420.0, 30.0],
					"text": "Start-up: the Live API is ready when live.thisdevice bangs; dspstate~ reports Live's sample rate first (trigger fires right to left).",
					"linecount": 2
				}
			},
			{
				"box": {
					"id": "obj-5",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 3,
					"outlettype": ["bang", "int", "int"],
					"patching_rect": [20.0, 44.0, 90.0, 20.0],
					"text": "live.thisdevice"
				}
			},
			{
				"box": {
					"id": "obj-6",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": ["bang", "bang"],
					"patching_rect": [20.0, 72.0, 40.0, 20.0],
					"text": "t b b"
				}
			},
			{
				"box": {
					"id": "obj-7",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 4,
					"outlettype": ["int", "float", "int", "int"],
					"patching_rect": [120.0, 100.0, 70.0, 20.0],
					"text": "dspstate~"
				}
			},
			{
				"box": {
					"id": "obj-8",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [""],
					"patching_rect": [120.0, 128.0, 110.0, 20.0],
					"text": "prepend samplerate"
				}
			},
			{
				"box": {
					"id": "obj-9",
					"maxclass": "live.dial",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": ["", "float"],
					"patching_rect": [20.0, 180.0, 44.0, 48.0],
					"presentation": 1,
					"presentation_rect": [4.0, 4.0, 44.0, 48.0],
					"parameter_enable": 1,
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_annotation_name": "Sampling temperature",
							"parameter_initial": [0.98],
							"parameter_initial_enable": 1,
							"parameter_longname": "Temperature",
							"parameter_mmax": 2.0,
							"parameter_mmin": 0.01,
							"parameter_shortname": "Temp",
							"parameter_type": 0,
							"parameter_unitstyle": 1
						}
					},
					"varname": "Temperature",
					"annotation": "Sampling temperature: lower is safer, higher is wilder (0.98 is Jukebox's usual)."
				}
			},
			{
				"box": {
					"id": "obj-10",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [80.0, 164.0, 40.0, 18.0],
					"presentation": 1,
					"presentation_rect": [54.0, 2.0, 40.0, 18.0],
					"text": "Takes"
				}
			},
			{
				"box": {
					"id": "obj-11",
					"maxclass": "live.numbox",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": ["", "float"],
					"patching_rect": [80.0, 184.0, 40.0, 15.0],
					"presentation": 1,
					"presentation_rect": [54.0, 20.0, 40.0, 15.0],
					"parameter_enable": 1,
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_initial": [1],
							"parameter_initial_enable": 1,
							"parameter_longname": "Takes",
							"parameter_mmax": 8,
							"parameter_mmin": 1,
							"parameter_shortname": "Takes",
							"parameter_type": 1,
							"parameter_unitstyle": 0
						}
					},
					"varname": "Takes",
					"annotation": "Independent takes rendered as one batch (1 to 8); each gets its own track."
				}
			},
			{
				"box": {
					"id": "obj-12",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [140.0, 164.0, 60.0, 18.0],
					"presentation": 1,
					"presentation_rect": [100.0, 2.0, 60.0, 18.0],
					"text": "Quality"
				}
			},
			{
				"box": {
					"id": "obj-13",
					"maxclass": "live.tab",
					"numinlets": 1,
					"numoutlets": 3,
					"outlettype": ["", "", "float"],
					"patching_rect": [140.0, 184.0, 70.0, 15.0],
					"presentation": 1,
					"presentation_rect": [100.0, 20.0, 70.0, 15.0],
					"parameter_enable": 1,
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_enum": ["draft", "full"],
							"parameter_initial": [1],
							"parameter_initial_enable": 1,
							"parameter_longname": "Quality",
							"parameter_mmax": 1,
							"parameter_shortname": "Quality",
							"parameter_type": 2,
							"parameter_unitstyle": 9
						}
					},
					"varname": "Quality",
					"num_lines_patching": 1,
					"num_lines_presentation": 1,
					"annotation": "draft decodes the top level only (fast); full upsamples through every level."
				}
			},
			{
				"box": {
					"id": "obj-14",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [230.0, 164.0, 60.0, 18.0],
					"presentation": 1,
					"presentation_rect": [176.0, 2.0, 60.0, 18.0],
					"text": "Length"
				}
			},
			{
				"box": {
					"id": "obj-15",
					"maxclass": "live.tab",
					"numinlets": 1,
					"numoutlets": 3,
					"outlettype": ["", "", "float"],
					"patching_rect": [230.0, 184.0, 60.0, 15.0],
					"presentation": 1,
					"presentation_rect": [176.0, 20.0, 60.0, 15.0],
					"parameter_enable": 1,
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_enum": ["sec", "bars"],
							"parameter_initial": [0],
							"parameter_initial_enable": 1,
							"parameter_longname": "Length Unit",
							"parameter_mmax": 1,
							"parameter_shortname": "Unit",
							"parameter_type": 2,
							"parameter_unitstyle": 9
						}
					},
					"varname": "Length Unit",
					"num_lines_patching": 1,
					"num_lines_presentation": 1,
					"annotation": "Length of new material in seconds, or in 4/4 bars at the Set's tempo."
				}
			},
			{
				"box": {
					"id": "obj-16",
					"maxclass": "live.numbox",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": ["", "float"],
					"patching_rect": [300.0, 184.0, 48.0, 15.0],
					"presentation": 1,
					"presentation_rect": [240.0, 20.0, 48.0, 15.0],
					"parameter_enable": 1,
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_initial": [10.0],
							"parameter_initial_enable": 1,
							"parameter_longname": "Length Seconds",
							"parameter_mmax": 300.0,
							"parameter_mmin": 1.0,
							"parameter_shortname": "Seconds",
							"parameter_type": 0,
							"parameter_unitstyle": 1
						}
					},
					"varname": "Length Seconds",
					"annotation": "Seconds of new material (Continue, Prime), 1 to 300."
				}
			},
			{
				"box": {
					"id": "obj-17",
					"maxclass": "live.numbox",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": ["", "float"],
					"patching_rect": [360.0, 184.0, 44.0, 15.0],
					"presentation": 1,
					"presentation_rect": [292.0, 20.0, 44.0, 15.0],
					"parameter_enable": 1,
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_initial": [4.0],
							"parameter_initial_enable": 1,
							"parameter_longname": "Length Bars",
							"parameter_mmax": 128.0,
							"parameter_mmin": 1.0,
							"parameter_shortname": "Bars",
							"parameter_type": 0,
							"parameter_unitstyle": 1
						}
					},
					"varname": "Length Bars",
					"annotation": "Bars of new material (Continue, Prime), 1 to 128 (at most 300 s); trimmed or padded to whole bars."
				}
			},
			{
				"box": {
					"id": "obj-18",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [420.0, 164.0, 60.0, 18.0],
					"presentation": 1,
					"presentation_rect": [342.0, 2.0, 60.0, 18.0],
					"text": "Place on"
				}
			},
			{
				"box": {
					"id": "obj-19",
					"maxclass": "live.tab",
					"numinlets": 1,
					"numoutlets": 3,
					"outlettype": ["", "", "float"],
					"patching_rect": [420.0, 184.0, 110.0, 15.0],
					"presentation": 1,
					"presentation_rect": [342.0, 20.0, 110.0, 15.0],
					"parameter_enable": 1,
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_enum": ["new tracks", "clip track"],
							"parameter_initial": [0],
							"parameter_initial_enable": 1,
							"parameter_longname": "Place On",
							"parameter_mmax": 1,
							"parameter_shortname": "Place",
							"parameter_type": 2,
							"parameter_unitstyle": 9
						}
					},
					"varname": "Place On",
					"num_lines_patching": 1,
					"num_lines_presentation": 1,
					"annotation": "Where takes go: a new audio track per take, or (Continue and Prime, take 1) the selected clip's own track."
				}
			},
			{
				"box": {
					"id": "obj-20",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [20.0, 250.0, 40.0, 18.0],
					"presentation": 1,
					"presentation_rect": [4.0, 58.0, 40.0, 18.0],
					"text": "Artist"
				}
			},
			{
				"box": {
					"id": "obj-21",
					"maxclass": "live.menu",
					"numinlets": 1,
					"numoutlets": 3,
					"outlettype": ["", "", "float"],
					"patching_rect": [20.0, 270.0, 150.0, 15.0],
					"presentation": 1,
					"presentation_rect": [44.0, 58.0, 150.0, 15.0],
					"parameter_enable": 1,
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_enum": ["(model default)"],
							"parameter_invisible": 2,
							"parameter_longname": "Artist Menu",
							"parameter_mmax": 0,
							"parameter_shortname": "Artist",
							"parameter_type": 2
						}
					},
					"varname": "Artist Menu",
					"annotation": "Artist label, from the engine's list (type in the box to search)."
				}
			},
			{
				"box": {
					"id": "obj-22",
					"maxclass": "textedit",
					"numinlets": 1,
					"numoutlets": 4,
					"outlettype": ["", "int", "", ""],
					"patching_rect": [180.0, 270.0, 90.0, 18.0],
					"presentation": 1,
					"presentation_rect": [198.0, 57.0, 90.0, 17.0],
					"keymode": 1,
					"lines": 1,
					"parameter_enable": 0,
					"annotation": "Search artists: type part of a name and press Return."
				}
			},
			{
				"box": {
					"id": "obj-23",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 3,
					"outlettype": ["", "", ""],
					"patching_rect": [20.0, 330.0, 200.0, 20.0],
					"text": "pattr artist_name @parameter_enable 1",
					"restore": ["(model default)"],
					"varname": "artist_name",
					"saved_object_attributes": {
						"parameter_enable": 1,
						"parameter_mappable": 0
					},
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_invisible": 1,
							"parameter_longname": "Artist Name",
							"parameter_shortname": "Artist Name",
							"parameter_type": 3
						}
					}
				}
			},
			{
				"box": {
					"id": "obj-24",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [300.0, 250.0, 40.0, 18.0],
					"presentation": 1,
					"presentation_rect": [294.0, 58.0, 40.0, 18.0],
					"text": "Genre"
				}
			},
			{
				"box": {
					"id": "obj-25",
					"maxclass": "live.menu",
					"numinlets": 1,
					"numoutlets": 3,
					"outlettype": ["", "", "float"],
					"patching_rect": [300.0, 270.0, 120.0, 15.0],
					"presentation": 1,
					"presentation_rect": [334.0, 58.0, 120.0, 15.0],
					"parameter_enable": 1,
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_enum": ["(model default)"],
							"parameter_invisible": 2,
							"parameter_longname": "Genre Menu",
							"parameter_mmax": 0,
							"parameter_shortname": "Genre",
							"parameter_type": 2
						}
					},
					"varname": "Genre Menu",
					"annotation": "Genre label, from the engine's list (type in the box to search)."
				}
			},
			{
				"box": {
					"id": "obj-26",
					"maxclass": "textedit",
					"numinlets": 1,
					"numoutlets": 4,
					"outlettype": ["", "int", "", ""],
					"patching_rect": [430.0, 270.0, 90.0, 18.0],
					"presentation": 1,
					"presentation_rect": [458.0, 57.0, 90.0, 17.0],
					"keymode": 1,
					"lines": 1,
					"parameter_enable": 0,
					"annotation": "Search genres: type part of a name and press Return."
				}
			},
			{
				"box": {
					"id": "obj-27",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 3,
					"outlettype": ["", "", ""],
					"patching_rect": [300.0, 330.0, 200.0, 20.0],
					"text": "pattr genre_name @parameter_enable 1",
					"restore": ["(model default)"],
					"varname": "genre_name",
					"saved_object_attributes": {
						"parameter_enable": 1,
						"parameter_mappable": 0
					},
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_invisible": 1,
							"parameter_longname": "Genre Name",
							"parameter_shortname": "Genre Name",
							"parameter_type": 3
						}
					}
				}
			},
			{
				"box": {
					"id": "obj-28",
					"maxclass": "live.text",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": ["", ""],
					"patching_rect": [20.0, 380.0, 70.0, 18.0],
					"presentation": 1,
					"presentation_rect": [4.0, 82.0, 70.0, 18.0],
					"text": "Continue",
					"parameter_enable": 1,
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_enum": ["val1", "val2"],
							"parameter_invisible": 2,
							"parameter_longname": "Continue",
							"parameter_mmax": 1,
							"parameter_shortname": "Continue",
							"parameter_type": 2
						}
					},
					"varname": "Continue",
					"mode": 0,
					"texton": "Continue",
					"annotation": "Continue the selected clip: new material right after it."
				}
			},
			{
				"box": {
					"id": "obj-29",
					"maxclass": "live.text",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": ["", ""],
					"patching_rect": [110.0, 380.0, 70.0, 18.0],
					"presentation": 1,
					"presentation_rect": [78.0, 82.0, 70.0, 18.0],
					"text": "Prime",
					"parameter_enable": 1,
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_enum": ["val1", "val2"],
							"parameter_invisible": 2,
							"parameter_longname": "Prime",
							"parameter_mmax": 1,
							"parameter_shortname": "Prime",
							"parameter_type": 2
						}
					},
					"varname": "Prime",
					"mode": 0,
					"texton": "Prime",
					"annotation": "Use the selected clip as the prompt; new material after it."
				}
			},
			{
				"box": {
					"id": "obj-30",
					"maxclass": "live.text",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": ["", ""],
					"patching_rect": [200.0, 380.0, 70.0, 18.0],
					"presentation": 1,
					"presentation_rect": [152.0, 82.0, 70.0, 18.0],
					"text": "Re-render",
					"parameter_enable": 1,
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_enum": ["val1", "val2"],
							"parameter_invisible": 2,
							"parameter_longname": "Re-render",
							"parameter_mmax": 1,
							"parameter_shortname": "Re-render",
							"parameter_type": 2
						}
					},
					"varname": "Re-render",
					"mode": 0,
					"texton": "Re-render",
					"annotation": "Re-sample the selected clip's region; the result goes on a new track."
				}
			},
			{
				"box": {
					"id": "obj-31",
					"maxclass": "live.text",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": ["", ""],
					"patching_rect": [290.0, 380.0, 70.0, 18.0],
					"presentation": 1,
					"presentation_rect": [226.0, 82.0, 70.0, 18.0],
					"text": "Cancel",
					"parameter_enable": 1,
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_enum": ["val1", "val2"],
							"parameter_invisible": 2,
							"parameter_longname": "Cancel",
							"parameter_mmax": 1,
							"parameter_shortname": "Cancel",
							"parameter_type": 2
						}
					},
					"varname": "Cancel",
					"mode": 0,
					"texton": "Cancel",
					"annotation": "Cancel this device's latest running job."
				}
			},
			{
				"box": {
					"id": "obj-32",
					"maxclass": "live.slider",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": ["", "float"],
					"patching_rect": [20.0, 560.0, 300.0, 16.0],
					"presentation": 1,
					"presentation_rect": [4.0, 106.0, 450.0, 16.0],
					"parameter_enable": 1,
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_invisible": 2,
							"parameter_longname": "Progress",
							"parameter_mmax": 100.0,
							"parameter_mmin": 0.0,
							"parameter_shortname": "Progress",
							"parameter_type": 0,
							"parameter_unitstyle": 5
						}
					},
					"varname": "Progress",
					"orientation": 1,
					"ignoreclick": 1,
					"showname": 0,
					"shownumber": 1,
					"annotation": "Progress of the running job."
				}
			},
			{
				"box": {
					"id": "obj-33",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [20.0, 590.0, 550.0, 18.0],
					"presentation": 1,
					"presentation_rect": [4.0, 126.0, 550.0, 18.0],
					"text": "Select an audio clip, then press Continue, Prime or Re-render (Refine: a draft take).",
					"varname": "status"
				}
			},
			{
				"box": {
					"id": "obj-34",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [20.0, 614.0, 550.0, 18.0],
					"presentation": 1,
					"presentation_rect": [4.0, 146.0, 550.0, 18.0],
					"text": "Engine not running",
					"varname": "connection",
					"textcolor": [0.6, 0.6, 0.6, 1.0]
				}
			},
			{
				"box": {
					"id": "obj-35",
					"maxclass": "newobj",
					"numinlets": 2,
					"numoutlets": 9,
					"outlettype": ["", "", "", "", "", "", "", "", ""],
					"patching_rect": [20.0, 480.0, 600.0, 20.0],
					"text": "js jb_main.js",
					"saved_object_attributes": {
						"filename": "jb_main.js",
						"parameter_enable": 0
					}
				}
			},
			{
				"box": {
					"id": "obj-36",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [20.0, 660.0, 140.0, 20.0],
					"text": "udpsend 127.0.0.1 9130"
				}
			},
			{
				"box": {
					"id": "obj-37",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [""],
					"patching_rect": [640.0, 420.0, 100.0, 20.0],
					"text": "udpreceive 9131"
				}
			},
			{
				"box": {
					"id": "obj-38",
					"maxclass": "comment",
					"numinlets": 1,
					"numoutlets": 0,
					"patching_rect": [640.0, 370.0, 260.0, 42.0],
					"text": "Replies come to the port each request names (udpreceive cannot see a sender's port); the script moves it per device instance with 'port N'.",
					"linecount": 3
				}
			},
			{
				"box": {
					"id": "obj-39",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [""],
					"patching_rect": [20.0, 216.0, 110.0, 20.0],
					"text": "prepend temperature"
				}
			},
			{
				"box": {
					"id": "obj-40",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [""],
					"patching_rect": [80.0, 220.0, 110.0, 20.0],
					"text": "prepend takes"
				}
			},
			{
				"box": {
					"id": "obj-41",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [""],
					"patching_rect": [140.0, 220.0, 110.0, 20.0],
					"text": "prepend quality"
				}
			},
			{
				"box": {
					"id": "obj-42",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [""],
					"patching_rect": [230.0, 220.0, 110.0, 20.0],
					"text": "prepend length_unit"
				}
			},
			{
				"box": {
					"id": "obj-43",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [""],
					"patching_rect": [300.0, 220.0, 110.0, 20.0],
					"text": "prepend length_seconds"
				}
			},
			{
				"box": {
					"id": "obj-44",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [""],
					"patching_rect": [360.0, 220.0, 110.0, 20.0],
					"text": "prepend length_bars"
				}
			},
			{
				"box": {
					"id": "obj-45",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [""],
					"patching_rect": [420.0, 220.0, 110.0, 20.0],
					"text": "prepend place_on"
				}
			},
			{
				"box": {
					"id": "obj-46",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [""],
					"patching_rect": [20.0, 306.0, 110.0, 20.0],
					"text": "prepend artist_index"
				}
			},
			{
				"box": {
					"id": "obj-47",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [""],
					"patching_rect": [300.0, 306.0, 110.0, 20.0],
					"text": "prepend genre_index"
				}
			},
			{
				"box": {
					"id": "obj-48",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [""],
					"patching_rect": [180.0, 306.0, 110.0, 20.0],
					"text": "prepend artist_query"
				}
			},
			{
				"box": {
					"id": "obj-49",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [""],
					"patching_rect": [430.0, 306.0, 110.0, 20.0],
					"text": "prepend genre_query"
				}
			},
			{
				"box": {
					"id": "obj-50",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [""],
					"patching_rect": [20.0, 356.0, 110.0, 20.0],
					"text": "prepend stored_artist"
				}
			},
			{
				"box": {
					"id": "obj-51",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [""],
					"patching_rect": [300.0, 356.0, 110.0, 20.0],
					"text": "prepend stored_genre"
				}
			},
			{
				"box": {
					"id": "obj-52",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [""],
					"patching_rect": [20.0, 410.0, 120.0, 20.0],
					"text": "prepend press continue"
				}
			},
			{
				"box": {
					"id": "obj-53",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [""],
					"patching_rect": [110.0, 410.0, 120.0, 20.0],
					"text": "prepend press prime"
				}
			},
			{
				"box": {
					"id": "obj-54",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [""],
					"patching_rect": [200.0, 410.0, 120.0, 20.0],
					"text": "prepend press rerender"
				}
			},
			{
				"box": {
					"id": "obj-56",
					"maxclass": "live.text",
					"numinlets": 1,
					"numoutlets": 2,
					"outlettype": ["", ""],
					"patching_rect": [380.0, 380.0, 70.0, 18.0],
					"presentation": 1,
					"presentation_rect": [300.0, 82.0, 70.0, 18.0],
					"text": "Refine",
					"parameter_enable": 1,
					"saved_attribute_attributes": {
						"valueof": {
							"parameter_enum": ["val1", "val2"],
							"parameter_invisible": 2,
							"parameter_longname": "Refine",
							"parameter_mmax": 1,
							"parameter_shortname": "Refine",
							"parameter_type": 2
						}
					},
					"varname": "Refine",
					"mode": 0,
					"texton": "Refine",
					"annotation": "Render the selected draft clip (a draft take) at full quality from its own saved codes; the result goes under it on a new track."
				}
			},
			{
				"box": {
					"id": "obj-57",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [""],
					"patching_rect": [380.0, 410.0, 120.0, 20.0],
					"text": "prepend press refine"
				}
			},
			{
				"box": {
					"id": "obj-55",
					"maxclass": "newobj",
					"numinlets": 1,
					"numoutlets": 1,
					"outlettype": [""],
					"patching_rect": [290.0, 410.0, 120.0, 20.0],
					"text": "prepend press cancel"
				}
			}
		],
		"lines": [
			{
				"patchline": {
					"destination": ["obj-3", 0],
					"source": ["obj-2", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-3", 1],
					"source": ["obj-2", 1]
				}
			},
			{
				"patchline": {
					"destination": ["obj-6", 0],
					"source": ["obj-5", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-7", 0],
					"source": ["obj-6", 1]
				}
			},
			{
				"patchline": {
					"destination": ["obj-8", 0],
					"source": ["obj-7", 1]
				}
			},
			{
				"patchline": {
					"destination": ["obj-35", 0],
					"source": ["obj-6", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-35", 0],
					"source": ["obj-8", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-35", 1],
					"source": ["obj-37", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-39", 0],
					"source": ["obj-9", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-35", 0],
					"source": ["obj-39", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-40", 0],
					"source": ["obj-11", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-35", 0],
					"source": ["obj-40", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-41", 0],
					"source": ["obj-13", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-35", 0],
					"source": ["obj-41", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-42", 0],
					"source": ["obj-15", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-35", 0],
					"source": ["obj-42", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-43", 0],
					"source": ["obj-16", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-35", 0],
					"source": ["obj-43", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-44", 0],
					"source": ["obj-17", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-35", 0],
					"source": ["obj-44", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-45", 0],
					"source": ["obj-19", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-35", 0],
					"source": ["obj-45", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-46", 0],
					"source": ["obj-21", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-35", 0],
					"source": ["obj-46", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-47", 0],
					"source": ["obj-25", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-35", 0],
					"source": ["obj-47", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-48", 0],
					"source": ["obj-22", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-35", 0],
					"source": ["obj-48", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-49", 0],
					"source": ["obj-26", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-35", 0],
					"source": ["obj-49", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-50", 0],
					"source": ["obj-23", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-35", 0],
					"source": ["obj-50", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-51", 0],
					"source": ["obj-27", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-35", 0],
					"source": ["obj-51", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-52", 0],
					"source": ["obj-28", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-35", 0],
					"source": ["obj-52", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-53", 0],
					"source": ["obj-29", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-35", 0],
					"source": ["obj-53", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-54", 0],
					"source": ["obj-30", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-35", 0],
					"source": ["obj-54", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-57", 0],
					"source": ["obj-56", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-35", 0],
					"source": ["obj-57", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-55", 0],
					"source": ["obj-31", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-35", 0],
					"source": ["obj-55", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-36", 0],
					"source": ["obj-35", 0]
				}
			},
			{
				"patchline": {
					"destination": ["obj-33", 0],
					"source": ["obj-35", 1]
				}
			},
			{
				"patchline": {
					"destination": ["obj-34", 0],
					"source": ["obj-35", 2]
				}
			},
			{
				"patchline": {
					"destination": ["obj-32", 0],
					"source": ["obj-35", 3]
				}
			},
			{
				"patchline": {
					"destination": ["obj-21", 0],
					"source": ["obj-35", 4]
				}
			},
			{
				"patchline": {
					"destination": ["obj-25", 0],
					"source": ["obj-35", 5]
				}
			},
			{
				"patchline": {
					"destination": ["obj-23", 0],
					"source": ["obj-35", 6]
				}
			},
			{
				"patchline": {
					"destination": ["obj-27", 0],
					"source": ["obj-35", 7]
				}
			},
			{
				"patchline": {
					"destination": ["obj-37", 0],
					"source": ["obj-35", 8]
				}
			}
		],
		"parameters": {
			"obj-9": ["Temperature", "Temp", 0],
			"obj-11": ["Takes", "Takes", 0],
			"obj-13": ["Quality", "Quality", 0],
			"obj-15": ["Length Unit", "Unit", 0],
			"obj-16": ["Length Seconds", "Seconds", 0],
			"obj-17": ["Length Bars", "Bars", 0],
			"obj-19": ["Place On", "Place", 0],
			"obj-21": ["Artist Menu", "Artist", 0],
			"obj-23": ["Artist Name", "Artist Name", 0],
			"obj-25": ["Genre Menu", "Genre", 0],
			"obj-27": ["Genre Name", "Genre Name", 0],
			"obj-28": ["Continue", "Continue", 0],
			"obj-29": ["Prime", "Prime", 0],
			"obj-30": ["Re-render", "Re-render", 0],
			"obj-31": ["Cancel", "Cancel", 0],
			"obj-56": ["Refine", "Refine", 0],
			"obj-32": ["Progress", "Progress", 0],
			"parameterbanks": {
				"0": {
					"index": 0,
					"name": "Jukebox",
					"parameters": ["Temperature", "Takes", "Quality", "Length Unit", "Length Seconds", "Length Bars", "Place On", "-"]
				}
			},
			"inherited_shortname": 1
		},
		"dependency_cache": [
			{
				"name": "jb_main.js",
				"patcherrelativepath": ".",
				"type": "TEXT",
				"implicit": 1
			},
			{
				"name": "jb_controller.js",
				"patcherrelativepath": ".",
				"type": "TEXT",
				"implicit": 1
			},
			{
				"name": "jb_core.js",
				"patcherrelativepath": ".",
				"type": "TEXT",
				"implicit": 1
			},
			{
				"name": "jb_live.js",
				"patcherrelativepath": ".",
				"type": "TEXT",
				"implicit": 1
			}
		],
		"latency": 0,
		"is_mpe": 0,
		"minimum_live_version": "",
		"minimum_max_version": "",
		"platform_compatibility": 0,
		"project": {
			"version": 1,
			"creationdate": 3590052786,
			"modificationdate": 3590052786,
			"viewrect": [0.0, 0.0, 300.0, 500.0],
			"autoorganize": 1,
			"hideprojectwindow": 1,
			"showdependencies": 1,
			"autolocalize": 0,
			"contents": {
				"patchers": {},
				"code": {
					"jb_main.js": {
						"kind": "javascript",
						"local": 1
					},
					"jb_controller.js": {
						"kind": "javascript",
						"local": 1
					},
					"jb_core.js": {
						"kind": "javascript",
						"local": 1
					},
					"jb_live.js": {
						"kind": "javascript",
						"local": 1
					}
				}
			},
			"layout": {},
			"searchpath": {},
			"detailsvisible": 0,
			"amxdtype": 1633771873,
			"readonly": 0,
			"devpathtype": 0,
			"devpath": ".",
			"sortmode": 0,
			"viewmode": 0,
			"includepackages": 0
		},
		"autosave": 0
	}
}

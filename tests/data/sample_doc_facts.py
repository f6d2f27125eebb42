"""Ground truth for the sample documents in orgtune/data/samples/docs/, written by hand.

Tests use these constants to check the document extractor without trusting it. Keys are file names
inside orgtune/data/samples/docs/. Every string below occurs verbatim in the document's text: in the
raw file for .md/.txt, in the visible text for .html, in the python-docx paragraph and table text for
.docx, and in the pdfplumber text for .pdf. If you edit a document (or scripts/make_sample_docs.py,
which writes the .docx and .pdf), update this file too.

SPEC_VALUES: every measured quantity the document states, i.e. a number with a unit or currency
    ("8.5 bar", "220-240 V", "19.5 x 30 x 31 cm", "EUR 25"), wherever it appears: tables, key/value
    lines, prose, list items and procedure steps. The list is in order of first appearance, without
    duplicates. Not included because they are names or plain numbers rather than quantities: model and
    part numbers (HV-3120, DS-40, WF-12), error codes (E4, E7, E9), fuse names (F1, F2), button names
    (1-cup, 2-cup), the support extension (ext. 5283 / "Support extension: 5283"), the unitless grind
    setting 12 (it is in DEFAULTS), and the clock times in "Support hours: Monday to Friday, 8:00 to
    18:00" (.docx).
PROCEDURES: each numbered procedure in document order, as the list of its step texts without the
    number marker.
DEFAULTS: (file, subject, value) for every sentence of the form "the default X is V", "X defaults to
    V", "X is set to V" or "By default, X is V". Files not listed have no such sentence.
"""

from __future__ import annotations

SPEC_VALUES: dict[str, list[str]] = {
    "halvo-service-manual.md": [
        "8.5 bar",
        "9 bar",
        "54 mm",
        "1350 W",
        "220-240 V",
        "50 Hz",
        "1.7 liters",
        "250 g",
        "0.6 liters",
        "6.4 kg",
        "19.5 x 30 x 31 cm",
        "88-96 C",
        "128 C",
        "38 seconds",
        "40 mm",
        "30 steps",
        "20 seconds",
        "1.2 m",
        "0.4 W",
        "30 double shots",
        "93 C",
        "88 C",
        "96 C",
        "36 ml",
        "18 ml",
        "25 minutes",
        "3 seconds",
        "60 minutes",
        "120 minutes",
        "90 days",
        "250 shots",
        "40 g",
        "1.0 liter",
        "1.5 liters",
        "5 seconds",
        "22 minutes",
        "60 days",
        "5 minutes",
        "500 ml",
    ],
    "halvo-troubleshooting.html": [
        "30 minutes",
        "2 A",
        "10 A",
        "110 V",
        "10 minutes",
        "4 seconds",
        "3 bar",
        "3 seconds",
        "8.5 bar",
    ],
    "halvo-warranty-policy.docx": [
        "30 months",
        "6 months",
        "90 days",
        "250 shots",
        "220-240 V",
        "110 V",
        "48 hours",
        "14 days",
        "10 days",
        "10 working days",
        "EUR 25",
        "EUR 15",
        "EUR 45",
        "EUR 95",
        "EUR 12",
    ],
    "halvo-quick-start.txt": [
        "220-240 V",
        "50 Hz",
        "1.7 liters",
        "8.5 bar",
        "54 mm",
        "10 cm",
        "110 V",
        "5 minutes",
        "38 seconds",
        "500 ml",
        "36 ml",
        "3 seconds",
        "90 days",
        "250 shots",
        "60 days",
    ],
    "halvo-cleaning-card.pdf": [
        "7 days",
        "30 days",
        "60 days",
        "90 days",
        "250 shots",
        "2 seconds",
    ],
}

PROCEDURES: dict[str, list[list[str]]] = {
    "halvo-service-manual.md": [
        [  # Descaling
            "Empty the water tank and dissolve one 40 g sachet of Tarnwick DS-40 descaler in 1.0 liter of water.",
            "Remove the portafilter and place a container of at least 1.5 liters under the group head and steam wand.",
            "Hold the 2-cup button and the Steam button together for 5 seconds until the descale light blinks amber.",
            "Press the 1-cup button to start the cycle, which runs for 22 minutes and pauses halfway.",
            "At the pause, rinse the tank, refill it with clean water and empty the container.",
            "Press the 1-cup button again to finish the rinse; the descale light goes out when the cycle is complete.",
        ],
        [  # Replacing the water filter
            "Remove the water tank and pull the old ClearSip WF-12 cartridge straight up.",
            "Soak the new cartridge in cold water for 5 minutes.",
            "Push the new cartridge onto the tank outlet until it clicks.",
            "Refill the tank, reinsert it and run 500 ml of water through the steam wand.",
            "Turn the filter date dial to the current month; the next change is due in 60 days.",
        ],
    ],
    "halvo-troubleshooting.html": [
        [  # Clearing error E9
            "Switch the machine off and let it cool for 10 minutes.",
            "Remove the portafilter and knock out the coffee puck.",
            "Brush the shower screen and run one empty shot to flush the group head.",
            "Turn the grind dial two steps coarser and switch the machine back on; E9 clears on the next shot.",
            "If E9 returns with the coarser grind, stop using the machine and call support on ext. 5283.",
        ],
    ],
    "halvo-warranty-policy.docx": [
        [  # How to make a claim
            "Find the serial number on the label under the base and keep your proof of purchase at hand.",
            "Call Tarnwick support on ext. 5283 within 14 days of noticing the fault.",
            "Describe the fault and any error code on the display; the agent may walk you through a fix first.",
            "If the fault remains, you receive a return authorisation number and a prepaid shipping label.",
            "Empty the tank and drip tray, pack the machine in its original box and send it within 10 days.",
        ],
    ],
    "halvo-quick-start.txt": [
        [  # FIRST USE
            "Remove all packing tape and wash the tank, drip tray and portafilter in warm water.",
            "Soak the ClearSip WF-12 cartridge in cold water for 5 minutes and push it onto the tank outlet.",
            "Fill the tank with cold water and push it down until it clicks.",
            "Plug in the machine and switch it on with the rear rocker switch.",
            "Wait 38 seconds for the lights to stop blinking.",
            "Run two empty double shots and 500 ml of water through the steam wand to flush the system.",
            "Fill the bean hopper, grind a double dose and pull your first shot.",
        ],
    ],
    "halvo-cleaning-card.pdf": [
        [  # Daily cleaning
            "Purge the steam wand for 2 seconds and wipe it with a damp cloth.",
            "Knock out the puck and rinse the portafilter and basket under hot water.",
            "Run one empty shot to rinse the shower screen.",
            "Empty and rinse the drip tray, then dry the machine with a soft cloth.",
        ],
    ],
}

DEFAULTS: list[tuple[str, str, str]] = [
    ("halvo-service-manual.md", "brew temperature", "93 C"),
    ("halvo-service-manual.md", "double shot volume", "36 ml"),
    ("halvo-service-manual.md", "single shot volume", "18 ml"),
    ("halvo-service-manual.md", "auto-standby", "25 minutes"),
    ("halvo-service-manual.md", "grind setting", "12"),
    ("halvo-troubleshooting.html", "pre-infusion time", "4 seconds"),
    ("halvo-quick-start.txt", "double shot", "36 ml"),
    ("halvo-quick-start.txt", "cup warmer", "off"),
]

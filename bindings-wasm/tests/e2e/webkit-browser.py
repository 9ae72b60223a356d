#!/usr/bin/python3
"""A minimal WebKitGTK browser for WebKitWebDriver, with a persistent profile.

Debian's MiniBrowser keeps no data under automation (an ephemeral profile),
so a browser restart could not be tested with it. This one keeps the
profile's website data (IndexedDB, OPFS, Web Locks' origin) in the directory
given as `--profile=DIR`, allows automation, and answers WebKitWebDriver's
requests for web views. Started by WebKitWebDriver (engines.mjs passes it as
`webkitgtk:browserOptions.binary`), never by hand.

Needs Debian's `gir1.2-webkit2-4.1` and `python3-gi` (hence /usr/bin/python3).
"""

import sys

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("WebKit2", "4.1")
from gi.repository import Gtk, WebKit2  # noqa: E402

args = sys.argv[1:]
profiles = [a.split("=", 1)[1] for a in args if a.startswith("--profile=")]
if len(profiles) != 1:
    sys.exit("webkit-browser.py: pass --automation --profile=DIR")
profile = profiles[0]

manager = WebKit2.WebsiteDataManager(
    base_data_directory=f"{profile}/data",
    base_cache_directory=f"{profile}/cache",
)
context = WebKit2.WebContext.new_with_website_data_manager(manager)
context.set_automation_allowed(True)
windows = []


def create_web_view(_session):
    view = WebKit2.WebView(web_context=context, is_controlled_by_automation=True)
    window = Gtk.Window()
    window.set_default_size(800, 600)
    window.add(view)
    window.show_all()
    windows.append(window)
    return view


def automation_started(_context, session):
    info = WebKit2.ApplicationInfo()
    info.set_name("erth-webkit-browser")
    info.set_version(1, 0, 0)
    session.set_application_info(info)
    session.connect("create-web-view", create_web_view)


context.connect("automation-started", automation_started)
Gtk.main()

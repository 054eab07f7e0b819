"""How to start a program of each language against the build tree.

Shared by torture.py and bad_inputs.py. A language whose binding (or
interpreter) is not in the build is reported as missing with the reason,
never silently replaced by another.
"""

import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
DEBIAN_PYTHON = "/usr/bin/python3"


class Lang:
    def __init__(self, name, argv, env, missing=None):
        self.name = name
        self.argv = argv  # program prefix; the script's own arguments follow
        self.env = env  # full environment for the child
        self.missing = missing  # None, or why this language cannot run


def _base_env():
    env = dict(os.environ)
    for k in ("PYTHONPATH", "PYTHONHOME", "RUBYLIB", "RUBYOPT", "LUA_PATH", "LUA_CPATH",
              "LUA_PATH_5_4", "LUA_CPATH_5_4", "LUA_INIT", "LUA_INIT_5_4"):
        env.pop(k, None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def lua_version(build):
    """The first "<v> <interpreter>" pair of <build>/bindings/lua/versions.txt."""
    path = os.path.join(build, "bindings", "lua", "versions.txt")
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    return parts[0], parts[1]
    except OSError:
        pass
    return None, None


def discover(build, c_program, script_base):
    """Lang objects for c, py, pyfl, rb, lua.

    c_program: the compiled C program; script_base: e.g. "worker" for
    worker.py / worker.rb / worker.lua in this directory.
    """
    langs = {}
    build = os.path.abspath(build)
    env = _base_env()
    langs["c"] = Lang("c", [c_program], env,
                      None if os.access(c_program, os.X_OK) else "%s not built" % c_program)

    pkg = os.path.join(build, "bindings", "python", "pkg")
    py_env = dict(env, PYTHONPATH=pkg)
    ok = os.path.isdir(os.path.join(pkg, "filelock")) and os.access(DEBIAN_PYTHON, os.X_OK)
    langs["py"] = Lang("py", [DEBIAN_PYTHON, os.path.join(HERE, script_base + ".py")], py_env,
                       None if ok else "Python binding not built (%s)" % pkg)

    # -S and only Debian's package directory on the path: our package
    # installed by `cmake --install` (/usr/local/lib/python3.X/dist-packages)
    # must not shadow Debian's.
    deb = "/usr/lib/python3/dist-packages"
    pyfl_ok = os.path.isfile(os.path.join(deb, "filelock", "__init__.py"))
    langs["pyfl"] = Lang("pyfl", [DEBIAN_PYTHON, "-S", os.path.join(HERE, script_base + ".py"),
                                  "--pyfl"], dict(env, PYTHONPATH=deb),
                         None if pyfl_ok else "Debian's python3-filelock is not installed")

    rblib = os.path.join(build, "bindings", "ruby", "lib")
    ruby = shutil.which("ruby")
    ok = ruby and os.path.isfile(os.path.join(rblib, "filelock.rb"))
    langs["rb"] = Lang("rb", [ruby or "ruby", "-I", rblib, os.path.join(HERE, script_base + ".rb")],
                       env, None if ok else "Ruby binding not built (%s)" % rblib)

    v, interp = lua_version(build)
    if v:
        d = os.path.join(build, "bindings", "lua", v)
        lua_env = dict(env, LUA_CPATH=d + "/?.so;;", LUA_PATH=d + "/?.lua;;")
        langs["lua"] = Lang("lua", [interp, os.path.join(HERE, script_base + ".lua")], lua_env)
    else:
        langs["lua"] = Lang("lua", [], env, "Lua binding not built (no versions.txt)")
    return langs

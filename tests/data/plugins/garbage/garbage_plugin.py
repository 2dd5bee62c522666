import os
import stat

from axd.sdk import Plugin, method


class Garbage(Plugin):
    @method
    def corrupt(self):
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            try:
                if stat.S_ISSOCK(os.fstat(fd).st_mode):
                    os.write(fd, b"\xff\xff\xff\xffnot json at all")
            except OSError:
                pass
        return "sent"

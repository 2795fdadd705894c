# PLACEHOLDER for the GNOME Files (Nautilus) extension of ingestfs, written
# only so that the ingestfs-nautilus Debian package can be built and tested.
# The real extension replaces this file.
from gi.repository import Nautilus, GObject


class IngestfsInfoProvider(GObject.GObject, Nautilus.InfoProvider):
    pass

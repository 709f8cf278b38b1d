"""The UI's screens: the inspector (:mod:`.inspector`), the report screen (:mod:`.report`) and
the dialogs they open (:mod:`.dialogs`).  The Apps that hold them are in :mod:`kinspect.app`."""

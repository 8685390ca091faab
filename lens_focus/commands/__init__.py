"""The command layer, on top of everything: ``lens-focus`` (:mod:`.cli`), each experiment as one
step that writes its files (:mod:`.runs`), and every step in order (:mod:`.reproduce`).

It composes the library (``lens_focus``) and the figures and tables (the top-level ``analyses``
package); neither of those imports it. CONTRIBUTING.md says where a new command or step goes.
"""

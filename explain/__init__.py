"""Explanations: where a model looks and whether that is the right place.

The attribution methods, ``python -m explain.run`` and the explanation metrics fill this
package (see the project's issues); it imports ``models`` and ``datasets``, never ``training``.
"""

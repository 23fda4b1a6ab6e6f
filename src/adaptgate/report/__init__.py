"""The adaptation report, rendered from a run's run.json (never from anything else).

- ``render.write_report(run_dir, record=None, formats=, langs=)`` and ``render.write_merged(...)``
  write REPORT.md / REPORT.html (REPORT.zh.* in Chinese); ``markdown.render_markdown(record)``
  returns the Markdown of one run.
- ``build.build_document`` lays out the sections in the seed reports' order as a
  ``doc.Document`` of blocks; ``markdown`` and ``html`` render the same document.
- ``sections.base.SECTIONS``: one renderer per gate kind, each reading that gate's result JSON;
  a gate without one is rendered by ``sections.generic``.
- ``labels/{en,zh}.yaml``: every word the report writes; ``numbers``: every way it writes a
  number; ``plots``: the plots it draws itself (matplotlib, imported only when drawing).
"""

"""A local web page for colorizing photos (gradio).

Upload one or several photos, colorize them, compare before and after with a slider (full
resolution; the fullscreen button zooms), download each result at full resolution in its input's
format (and a zip of all), see the detected instances drawn on the photo, remove instances, add a
box by dragging the mouse over that photo (or by typing its coordinates), click on the photo to give
a colour hint (a point and its colour), choose a colour for an instance, and rerun. Uploads are
capped in bytes and megapixels; a bad file or a bad edit gives one line, never a crash. The page
loads nothing from the internet (system fonts, no analytics, its script inline).

The work is done by plain functions in :mod:`instcolor.apps.web_photos` so that it can be tested
without a browser; :func:`build_app` wires them into gradio and :func:`launch` serves the
page. The page's only script of its own is ``web_page.js`` (:data:`PAGE_JS`, given to gradio inline):
on the instances photo a drag draws a box and, in hint mode, a click opens a colour picker at that
point; both send what they made, in the photo's own pixels, to the server through a text box and a
button. Under the colorizer's default ``hint_mode`` (``"propagate"``) point hints are spread over
the result and instance colours shift their instance, with any weights; with hints fed to networks
trained without them (:attr:`instcolor.models.config.ModelConfig.hints`) the page says, in the CLI's
words, that they do little there.
"""

from __future__ import annotations

import dataclasses
import os
from importlib.resources import files

from instcolor.apps.web_photos import (
    PageLimits,
    PhotoResult,
    UploadError,
    add_drawn_box,
    add_hint,
    colorize_batch,
    draw_instances,
    hex_colour,
    hint_list_html,
    instance_names,
    name_index,
    photo_status,
    remove_hint,
    rerun_photo,
    set_instance_colour,
)
from instcolor.inference.pipeline import HINTS_IGNORED, Colorizer

#: The page's script (``web_page.js``): drawing boxes and placing colour hints on the instances photo.
PAGE_JS = files("instcolor.apps").joinpath("web_page.js").read_text(encoding="utf-8")
PAGE_CSS = """
#overlay img { cursor: crosshair; }
.hint-table { font-size: 0.9em; } .hint-table td, .hint-table th { padding: 2px 6px; }
.hint-table button { padding: 0 8px; border: 1px solid #888; border-radius: 4px; font-size: 0.9em; }
.hint-swatch { display: inline-block; width: 1.1em; height: 1.1em; border: 1px solid #555; vertical-align: middle; }
#hints-warning { color: #a15c00; }
/* the instance colour's picker opens upwards over the page, so closing it does not move "Set colour" */
#instance-colour, #instance-colour-group, #instance-colour-group .styler, .styler:has(#instance-colour) { overflow: visible !important; }
#instance-colour .color-picker { position: absolute; bottom: 100%; left: 0; z-index: 1000;
  box-shadow: 0 4px 14px rgba(0, 0, 0, 0.3); }
"""
#: The photo tools: what a drag or click on the instances photo does.
TOOLS = ("draw a box", "add a colour hint")


def _gradio():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError as err:  # optional dependency
        raise RuntimeError("the web page needs gradio: pip install 'instcolor[web]'") from err
    return gr


def offline_theme():
    """The default gradio look with system fonts only: nothing is fetched from the internet."""
    gr = _gradio()
    sans = ("ui-sans-serif", "system-ui", "sans-serif")
    mono = ("ui-monospace", "Consolas", "monospace")
    return gr.themes.Default(font=sans, font_mono=mono)


def trained_with_hints(colorizer: Colorizer) -> bool:
    """Whether the colorizer's weights were trained with colour hints (else hints do little and can harm)."""
    return bool(getattr(getattr(colorizer.model, "config", None), "hints", False))


def build_app(colorizer: Colorizer, title: str = "instcolor", limits: PageLimits = PageLimits()):
    """The gradio Blocks page around ``colorizer`` (serve it with :func:`launch`)."""
    gr = _gradio()
    source = colorizer.metadata.get("source", "unknown source")

    with gr.Blocks(title=title, analytics_enabled=False) as page:
        gr.Markdown(
            f"# {title}\nInstance-aware colorization of grey photos. Weights: {source}. "
            f"Up to {limits.max_files} photos per run, {limits.max_bytes / 2**20:.0f} MB and "
            f"{limits.max_megapixels:g} megapixels each."
        )
        results_state = gr.State([])
        with gr.Row():
            with gr.Column(scale=1):
                files_box = gr.File(label="grey photos", file_count="multiple", file_types=["image"], elem_id="uploads")
                mode = gr.Radio(["fusion", "full"], value="fusion", label="network path", elem_id="mode")
                run = gr.Button("Colorize", variant="primary", elem_id="colorize")
                status = gr.Markdown(elem_id="status")
                downloads = gr.File(label="download (full resolution, the input's format; zip of all)",
                                    file_count="multiple", interactive=False, elem_id="downloads")
            with gr.Column(scale=2):
                picker = gr.Dropdown(label="photo", choices=[], elem_id="picker")
                compare = gr.ImageSlider(label="before / after (drag; fullscreen to zoom)", type="pil", format="png",
                                         buttons=["download", "fullscreen"], elem_id="compare", max_height=700)
        with gr.Row():
            with gr.Column(scale=2):
                gr.Radio(list(TOOLS), value=TOOLS[0], label="on the photo below", elem_id="photo-tool", interactive=True,
                         info="drag to draw a box, or click to give that point a colour")
                overlay = gr.Image(label="instances and colour hints", type="pil", format="png",
                                   interactive=False, elem_id="overlay")
            with gr.Column(scale=1):
                keep = gr.CheckboxGroup(label="instances (untick to remove)", choices=[], elem_id="keep")
                add_box = gr.Textbox(label="add a box: x1, y1, x2, y2 in pixels of the photo",
                                     placeholder="e.g. 40, 10, 300, 420", elem_id="add-box")
                with gr.Group(elem_id="instance-colour-group"):
                    colour_for = gr.Dropdown(label="colour for instance", choices=[], elem_id="colour-for")
                    instance_colour = gr.ColorPicker(value="#b22222", label="its colour", elem_id="instance-colour")
                    with gr.Row():
                        set_colour = gr.Button("Set colour", size="sm", elem_id="set-colour")
                        clear_colour = gr.Button("Clear colour", size="sm", elem_id="clear-colour")
                gr.Markdown("**colour hints**")
                if colorizer.hint_mode != "propagate" and not trained_with_hints(colorizer):
                    gr.Markdown(f"⚠ {HINTS_IGNORED}", elem_id="hints-warning")
                hint_list = gr.HTML(hint_list_html(()), elem_id="hint-list")
                hint_text = gr.Textbox(label="add a hint: x, y, #rrggbb (or click on the photo)",
                                       placeholder="e.g. 120, 80, #1e5aa8", elem_id="hint-text")
                with gr.Row():
                    hint_add = gr.Button("Add hint", size="sm", elem_id="hint-add")
                    hints_clear = gr.Button("Clear hints", size="sm", elem_id="clear-hints")
                rerun_button = gr.Button("Rerun with these instances, colours and hints", elem_id="rerun")
                drawn_box = gr.Textbox(visible="hidden", elem_id="drawn-box")  # filled by PAGE_JS
                draw_button = gr.Button(visible="hidden", elem_id="draw-add")
                hint_remove_index = gr.Textbox(visible="hidden", elem_id="hint-remove-index")
                hint_remove = gr.Button(visible="hidden", elem_id="hint-remove")

        def find(results, name) -> PhotoResult | None:
            return next((p for p in results or [] if p.name == name), None)

        def ticked(kept, names) -> list[str]:
            """The ticks of ``kept`` carried over to ``names`` by instance number."""
            indices = [name_index(k) for k in kept or []]
            return [names[i] for i in indices if i is not None and i < len(names)]

        def edited(photo: PhotoResult, kept=None, colouring=None) -> dict:
            """The page's views of ``photo`` (``kept``: the ticks to carry over, None: all ticked;
            ``colouring``: the instance chosen for a colour, None: the first)."""
            names = instance_names(photo.instances)
            chosen = (ticked([colouring], names) or names)[:1]
            return {
                overlay: draw_instances(photo.before, photo.instances, photo.hints),
                keep: gr.update(choices=names, value=names if kept is None else ticked(kept, names)),
                colour_for: gr.update(choices=names, value=chosen[0] if chosen else None),
                hint_list: hint_list_html(photo.hints),
            }

        def views(photo: PhotoResult | None, colouring=None) -> dict:
            if photo is None:
                return {compare: None, overlay: None, keep: gr.update(choices=[], value=[]),
                        colour_for: gr.update(choices=[], value=None), hint_list: hint_list_html(())}
            return {compare: (photo.before, photo.result.image), **edited(photo, colouring=colouring)}

        def replaced(results, new: PhotoResult) -> list[PhotoResult]:
            return [new if p.name == new.name else p for p in results]

        def run_batch(files, mode_value, progress=gr.Progress()):
            paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in (files or [])]
            if not paths:
                return {results_state: [], **views(None), downloads: None, picker: gr.update(choices=[], value=None),
                        status: "upload one or more photos first"}

            def step(i, n, name):
                progress((i, n), desc=f"colorizing {name}")

            try:
                results, problems, archive = colorize_batch(colorizer, paths, limits, mode_value, on_photo=step)
            except Exception as err:  # never a crash: one line on the page
                results, problems, archive = [], [f"colorizing failed: {type(err).__name__}: {err}"], None
            lines = [photo_status(p) for p in results] + [f"refused: {p}" for p in problems]
            downloaded = [p.output for p in results] + ([archive] if archive else [])
            choices = [p.name for p in results]
            return {results_state: results, **views(results[0] if results else None), downloads: downloaded or None,
                    picker: gr.update(choices=choices, value=choices[0] if choices else None),
                    status: "\n\n".join(lines) or "nothing colorized"}

        def pick(results, name):
            return views(find(results, name))

        def rerun(results, name, kept, colouring, box_text, mode_value):
            photo = find(results, name)
            if photo is None:
                return {status: "colorize a photo first"}
            indices = [i for i in (name_index(k) for k in kept or []) if i is not None]
            try:
                new = rerun_photo(colorizer, photo, indices, box_text or "", mode_value)
            except UploadError as err:
                return {status: str(err)}
            except Exception as err:
                return {status: f"rerun failed: {type(err).__name__}: {err}"}
            results = replaced(results, new)
            return {results_state: results, **views(new, colouring), downloads: [p.output for p in results], add_box: "",
                    status: "rerun " + photo_status(new)}

        def edit(change, clear=None):
            """A handler applying ``change(photo, instance chosen for a colour, *values) -> (photo, what to
            say)`` to the chosen photo (``clear``: the text box to empty afterwards); a new box is ticked."""

            def handler(results, name, kept, colouring, *values):
                photo = find(results, name)
                if photo is None:
                    return {status: "colorize a photo first"}
                try:
                    new, said = change(photo, colouring, *values)
                except UploadError as err:
                    return {status: str(err), **({clear: ""} if clear is not None else {})}
                added = instance_names(new.instances)[len(photo.instances) :]
                return {results_state: replaced(results, new), **edited(new, [*(kept or []), *added], colouring),
                        status: f"{said}: rerun to use it", **({clear: ""} if clear is not None else {})}

            return handler

        def drawn(photo, _, text):
            new = add_drawn_box(photo, text or "")
            return new, f"box {instance_names(new.instances)[-1]} added"

        def hinted(photo, _, text):
            new = add_hint(photo, text or "")
            x, y, colour = new.hints[-1]
            return new, f"hint H{len(new.hints)} at {round(x)}, {round(y)} ({hex_colour(colour)}) added"

        def unhinted(photo, _, number):
            return remove_hint(photo, number), f"hint H{str(number).strip()} removed"

        def cleared(photo, _):
            return dataclasses.replace(photo, hints=()), "hints cleared"

        def colour_of(clear: bool):
            def change(photo, name, colour):
                index = name_index(name or "")
                if index is None:
                    raise UploadError("choose an instance first")
                new = set_instance_colour(photo, index, None if clear else colour)
                return new, f"instance {index + 1} {'has no colour' if clear else 'colour set'}"

            return change

        everything = [results_state, compare, overlay, keep, colour_for, hint_list, downloads, picker, add_box,
                      hint_text, drawn_box, hint_remove_index, status]  # fmt: skip
        run.click(run_batch, inputs=[files_box, mode], outputs=everything)
        picker.input(pick, inputs=[results_state, picker], outputs=everything)
        rerun_button.click(rerun, inputs=[results_state, picker, keep, colour_for, add_box, mode], outputs=everything)
        chosen = [results_state, picker, keep, colour_for]
        draw_button.click(edit(drawn, drawn_box), inputs=[*chosen, drawn_box], outputs=everything)
        for trigger in (hint_add.click, hint_text.submit):
            trigger(edit(hinted, hint_text), inputs=[*chosen, hint_text], outputs=everything)
        hint_remove.click(edit(unhinted, hint_remove_index), inputs=[*chosen, hint_remove_index], outputs=everything)
        hints_clear.click(edit(cleared), inputs=chosen, outputs=everything)
        set_colour.click(edit(colour_of(False)), inputs=[*chosen, instance_colour], outputs=everything)
        clear_colour.click(edit(colour_of(True)), inputs=[*chosen, instance_colour], outputs=everything)
    page.instcolor_limits = limits
    return page


def launch(page, host: str = "127.0.0.1", port: int | None = 7860, **kwargs):
    """Serve ``page`` offline on ``host:port`` (loopback unless told otherwise), with its script
    (:data:`PAGE_JS`); gradio's own upload cap is twice the page's so that only absurd uploads are
    cut off before the page's message."""
    limits = getattr(page, "instcolor_limits", PageLimits())
    return page.launch(
        server_name=host,
        server_port=port,
        share=False,
        theme=offline_theme(),
        max_file_size=2 * limits.max_bytes,
        footer_links=[],
        js=PAGE_JS,
        css=PAGE_CSS,
        **kwargs,
    )

"""The Dataset tab: upload images/folders/zips, see the gallery with labels, fix labels, remove, re-crop, export.

Handlers are small functions over `studio.data`; every one that changes the dataset returns
the refreshed view, so the page always shows what is on disk.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator

import gradio as gr

from studio.data import hub, limits
from studio.data.dataset import (UNLABELED, CropSettings, Dataset, create_demo_dataset, display_name, import_into,
                                 list_datasets)
from studio.data.decode import CROP_MODES, PATCH_LAYOUTS
from studio.data.sources import size_text
from studio.data.demo import DEMO_CLASSES
from studio.errors import UserError
from studio.ui.common import as_text, refusing, user_errors
from studio.ui.session import Sessions
from studio.workspace import Workspace, free_name

ALL = "(all)"
FILE_WIDTH = 44  # characters of a file name in the report: the middle goes, the start and the extension stay
NOTHING_SELECTED = "Click images to select them (click again to unselect), or select all shown."


def _names(ws: Workspace) -> list[str]:
    return [d["dataset"] for d in list_datasets(ws)]


def _counts_markdown(ds: Dataset) -> str:
    counts = ds.counts()
    if not counts:
        return f"**{ds.name}** is empty: drop images above and press Import."
    rows = "\n".join(f"| {label} | {n} |" for label, n in counts.items())
    s = ds.settings
    lonely = [label for label, n in counts.items() if n == 1 and label != UNLABELED]
    warning = (f"\n\n**Only one image in {', '.join(lonely)}**: a GAN cannot learn a class from one example; "
               "add more, or relabel it into another class." if lonely else "")
    return (f"**{ds.name}**: {len(ds.images)} images, {s.size} px, crop `{s.crop}`\n\n"
            f"| class | images |\n|---|---|\n{rows}{warning}")


def _existing(ws: Workspace, name: str | None) -> Dataset | None:
    """The dataset called `name`, or None for an empty, new or unsafe name (typed names are validated first)."""
    try:
        return Dataset.open(ws, name) if name and (ws.dataset_dir(name) / "dataset.json").exists() else None
    except UserError:
        return None


def _damage(ws: Workspace, name: str | None) -> str | None:
    """Why dataset `name` cannot be opened (a damaged manifest), as a sentence; None for a good, new or unsafe name."""
    path = None
    try:
        path = ws.dataset_dir(name) if name else None
        if path is not None and (path / "dataset.json").exists():
            Dataset.open(ws, name)
    except UserError as exc:
        return str(exc) if path is not None else None
    return None


def dataset_view(ws: Workspace, name: str | None, show: str | None = ALL, ds: Dataset | None = None):
    """Gallery items, the ids behind them, class counts and the label filter, for dataset `name`."""
    ds = ds or _existing(ws, name)
    if ds is None:
        note = as_text(_damage(ws, name) or "") or "No dataset selected: type a new name, or create the demo dataset."
        return [], [], note, gr.update(choices=[ALL], value=ALL)
    labels = list(ds.counts())
    show = show if show in labels else ALL
    shown = [img for img in ds.images if show == ALL or img["label"] == show]
    items = [(str(ds.image_path(img)), f"{display_name(img)} · {img['label']}") for img in shown]  # the name first: captions clip
    return items, [img["id"] for img in shown], _counts_markdown(ds), gr.update(choices=[ALL, *labels], value=show)


def _label_choices(ds: Dataset | None) -> list[str]:
    return sorted(set(DEMO_CLASSES) | {UNLABELED} | set(ds.counts() if ds else ()))


def short_name(name: str, width: int = FILE_WIDTH) -> str:
    """`name` cut in the middle to `width` characters, so its start and its extension both show."""
    if len(name) <= width:
        return name
    tail = max(8, width // 3)
    return f"{name[:width - tail - 1]}…{name[-tail:]}"


def _report_rows(report, limit: int = 500) -> list[list[str]]:
    """The report as (why, file) rows, the reason first so it is read without scrolling; a huge archive's
    thousands of rejections are cut to `limit` rows and a count."""
    rows = [[f"Rejected: {item['reason']}", short_name(item["file"])] for item in report.rejected]
    rows += [[f"Skipped: {'the same image' if item['kind'] == 'exact' else 'nearly the same image'} as "
              f"{short_name(Path(item['duplicate_of']).name)}", short_name(item["file"])] for item in report.duplicates]
    return rows if len(rows) <= limit else rows[:limit] + [[f"… {len(rows) - limit} more (the CLI's --json lists them all)", ""]]


def named(entries: list[dict]) -> str:
    """Images by their file names, for a message: the first five, then a count."""
    shown = ", ".join(f"**{as_text(display_name(img))}**" for img in entries[:5])
    return shown + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")


def selection_text(ds: Dataset | None, ids: list[str]) -> str:
    """What is selected, by file name: 'Selected 3: a.png, b.png, c.png.'"""
    entries = [img for img in ds.images if img["id"] in set(ids)] if ds is not None else []
    return f"Selected {len(entries)}: {named(entries)}." if entries else NOTHING_SELECTED


def render(sessions: Sessions) -> None:
    """Build the tab's components in the current Blocks context and wire their events."""
    names = _names(sessions.at_build().ws)
    with gr.Row(equal_height=True):
        name = gr.Dropdown(names, value=names[0] if names else None, label="Dataset", allow_custom_value=True,
                           info="Pick one, or type a new name and import into it.", elem_id="dataset-name", scale=3)
        demo_btn = gr.Button("Create the demo dataset", elem_id="dataset-demo", scale=1)
    with gr.Row():
        with gr.Column(scale=3):
            uploads = gr.File(label="Drop images or zip files here", file_count="multiple", elem_id="dataset-upload", height=140)
            with gr.Accordion("…or upload a whole folder", open=False):
                folder = gr.File(label="Folder", file_count="directory", elem_id="dataset-folder")
            with gr.Row():
                label = gr.Dropdown(_label_choices(None), value=None, label="Label for these images",
                                    allow_custom_value=True, info="Art-movement class; empty = unlabeled.", elem_id="dataset-label")
                from_folders = gr.Checkbox(label="Sub-folder names are labels", info="For zips of class folders (ImageFolder).")
            with gr.Accordion("Crop and size", open=False):
                size = gr.Dropdown([64, 128, 256, 512], value=CropSettings().size, label="Size (px)", elem_id="dataset-size")
                crop = gr.Radio(list(CROP_MODES), value=CropSettings().crop, label="Crop",
                                info="center: square crop; pad: whole image, letterboxed; patches: K crops per large painting, keeping brushwork")
                patches = gr.Slider(1, 16, value=CropSettings().patches, step=1, label="Patches per large painting")
                layout = gr.Radio(list(PATCH_LAYOUTS), value=CropSettings().patch_layout, label="Patch layout")
                recrop_btn = gr.Button("Re-crop every image of this dataset with these settings", size="sm")
            import_btn = gr.Button("Import", variant="primary", elem_id="dataset-import")
            hub_ui = _hub_panel(sessions.multi_user)
        with gr.Column(scale=2):
            status = gr.Markdown(elem_id="dataset-status")
            counts = gr.Markdown(elem_id="dataset-counts")
            report = gr.Dataframe(headers=["why", "file"], label="Rejected and duplicate files", wrap=True,
                                  column_widths=["60%", "40%"], interactive=False, elem_id="dataset-report")
    with gr.Row():
        show = gr.Dropdown([ALL], value=ALL, label="Show class", scale=1, elem_id="dataset-show")
    gallery = gr.Gallery(label="Images (click to select, again to unselect; then relabel or remove them)", columns=8,
                         height=480, allow_preview=False, fit_columns=False, object_fit="cover", elem_id="dataset-gallery")
    shown_ids = gr.State([])
    selected = gr.State([])
    with gr.Row():
        with gr.Column(scale=2):
            selected_md = gr.Markdown(NOTHING_SELECTED, elem_id="dataset-selected")
            with gr.Row():
                select_all_btn = gr.Button("Select all shown", size="sm", elem_id="dataset-select-all")
                clear_btn = gr.Button("Clear selection", size="sm", elem_id="dataset-select-none")
        new_label = gr.Dropdown(_label_choices(None), value=None, label="New label", allow_custom_value=True, elem_id="dataset-new-label")
        with gr.Column(min_width=160):
            relabel_btn = gr.Button("Set label of the selected", size="sm", elem_id="dataset-relabel")
            remove_btn = gr.Button("Remove the selected", size="sm", variant="stop", elem_id="dataset-remove")
            undo_btn = gr.Button("Undo the last remove", size="sm", elem_id="dataset-undo")
    with gr.Accordion("Augmentation preview", open=False):
        gr.Markdown("What the GAN trainers see: DiffAugment transforms applied on the fly to real and generated images.")
        policy = gr.CheckboxGroup(["color", "translation", "cutout", "flip"], value=["color", "translation", "cutout", "flip"], label="Policy")
        preview_btn = gr.Button("Preview on 4 images", size="sm", elem_id="dataset-augment")
        preview = gr.Image(label="Original | augmented", type="pil", interactive=False, elem_id="dataset-augment-preview")
    with gr.Row():
        export_btn = gr.Button("Export as zip", elem_id="dataset-export")
        export_file = gr.File(label="Download", interactive=False, visible=False, elem_id="dataset-export-file")

    view_outputs = [gallery, shown_ids, counts, show]
    # A refused click is a sentence in the status line (see refusing): an error state would blank the gallery too.
    imported = [status, report, name, uploads, folder, *view_outputs]

    @refusing(len(imported))
    def on_import(ds_name, files, folder_files, label_value, folders_flag, size_v, crop_v, patches_v, layout_v, show_v,
                  request: gr.Request):
        ws = sessions.workspace(request)
        paths = [Path(p) for p in (files or []) + (folder_files or [])]
        if not ds_name:
            raise UserError("Type a name for the dataset first.")
        if not paths:
            raise UserError("Drop some images, a folder or a zip file first.")
        settings = CropSettings(size=int(size_v), crop=crop_v, patches=int(patches_v), patch_layout=layout_v)
        _, rep = import_into(ws, ds_name, paths, settings=settings, label=label_value or None,
                             labels_from_folders=bool(folders_flag))
        msg = f"Imported **{len(rep.imported)}** of {len(rep.imported) + len(rep.rejected) + len(rep.duplicates)} files"
        msg += f"; {len(rep.rejected)} rejected, {len(rep.duplicates)} duplicates (listed on the right)." if rep.rejected or rep.duplicates else "."
        if not rep.imported:
            msg = "Nothing was imported: none of the given files is a new, usable image (see the list on the right)."
        if rep.limit_notice:
            msg += f" {rep.limit_notice}"
        return (msg, _report_rows(rep), gr.update(choices=_names(ws), value=ds_name), None, None,
                *dataset_view(ws, ds_name, show_v))

    import_btn.click(on_import, [name, uploads, folder, label, from_folders, size, crop, patches, layout, show],
                     imported)
    _wire_hub_panel(hub_ui, sessions, name=name, crop_inputs=[size, crop, patches, layout], show=show, report=report,
                    view_outputs=view_outputs)

    @refusing(3 + len(view_outputs))
    def on_demo(ds_name, request: gr.Request):
        ws = sessions.workspace(request)
        new_name = ds_name and not (ws.datasets / ds_name).exists()
        if not new_name and _existing(ws, "demo") is not None:  # never a silent demo-2: open the one there is
            return ("**demo** is already here, so it is opened. To make another, type a new name under Dataset first.",
                    [], gr.update(choices=_names(ws), value="demo"), *dataset_view(ws, "demo"))
        taken = lambda n: (ws.datasets / n).exists()  # noqa: E731
        target = ds_name if new_name else free_name("demo", taken)
        limits.check_room(ws, limits.demo_bytes(120, 256), "another demo dataset")  # a shared studio's quota
        ds = create_demo_dataset(ws, target)
        return (f"Created **{target}**: {len(ds.images)} generated paintings in {len(ds.counts())} classes.", [],
                gr.update(choices=_names(ws), value=target), *dataset_view(ws, target))

    demo_btn.click(on_demo, [name], [status, report, name, *view_outputs])

    @user_errors
    def on_pick(ds_name, show_v, request: gr.Request):
        ws = sessions.workspace(request)
        ds = _existing(ws, ds_name)
        if ds is not None:
            s = ds.settings
            settings = (s.size, s.crop, s.patches, s.patch_layout)
        else:
            settings = tuple(gr.update() for _ in range(4))
        choices = _label_choices(ds)
        return (*dataset_view(ws, ds_name, show_v, ds), *settings, gr.update(choices=choices), gr.update(choices=choices), [],
                NOTHING_SELECTED)

    pick_outputs = [*view_outputs, size, crop, patches, layout, label, new_label, selected, selected_md]
    name.change(on_pick, [name, show], pick_outputs)

    @user_errors
    def on_show(ds_name, show_v, request: gr.Request):
        return dataset_view(sessions.workspace(request), ds_name, show_v)

    show.change(on_show, [name, show], view_outputs)

    @user_errors
    def on_open(current, request: gr.Request):
        names = _names(sessions.workspace(request))
        if current in names:  # no value: a name typed while the page loaded must not be put back to this one
            return gr.update(choices=names)
        return gr.update(choices=names, value=names[0] if names else None)

    sessions.on_load(on_open, [name], [name]).then(on_pick, [name, show], pick_outputs)

    @user_errors
    def on_select(ds_name, ids, chosen, evt: gr.SelectData, request: gr.Request):
        ds = _existing(sessions.workspace(request), ds_name)
        image_id = ids[evt.index] if ds is not None and evt.index is not None and evt.index < len(ids) else None
        if image_id is None:
            return chosen, selection_text(ds, chosen), gr.update()
        chosen = [i for i in chosen if i != image_id] if image_id in chosen else [*chosen, image_id]
        label = next((img["label"] for img in ds.images if img["id"] == image_id), None)
        return chosen, selection_text(ds, chosen), gr.update(value=label) if len(chosen) == 1 else gr.update()

    gallery.select(on_select, [name, shown_ids, selected], [selected, selected_md, new_label])

    @user_errors
    def on_select_all(ds_name, ids, request: gr.Request):
        return list(ids), selection_text(_existing(sessions.workspace(request), ds_name), list(ids))

    select_all_btn.click(on_select_all, [name, shown_ids], [selected, selected_md])
    clear_btn.click(lambda: ([], NOTHING_SELECTED), None, [selected, selected_md])

    # A click with nothing selected is answered in the selection line; the gallery and the counts are left as
    # they are (an error there marks every output of the event as failed: empty boxes, as if the dataset were gone).
    keep_view = [gr.update() for _ in view_outputs]

    @refusing(1 + len(view_outputs))
    def on_relabel(ds_name, chosen, label_value, show_v, request: gr.Request):
        ws = sessions.workspace(request)
        ds = _existing(ws, ds_name)
        if ds is None or not chosen:
            return f"Nothing is selected. {NOTHING_SELECTED}", *keep_view
        if not label_value:
            return f"Choose or type the new label first. {selection_text(ds, chosen)}", *keep_view
        entries = [img for img in ds.images if img["id"] in set(chosen)]
        ds.relabel(chosen, label_value)
        return (f"Relabelled {len(entries)} as **{as_text(label_value)}**: {named(entries)}.",
                *dataset_view(ws, ds_name, show_v))

    relabel_btn.click(on_relabel, [name, selected, new_label, show], [selected_md, *view_outputs])

    @refusing(2 + len(view_outputs), note=1)
    def on_remove(ds_name, chosen, show_v, request: gr.Request):
        ws = sessions.workspace(request)
        ds = _existing(ws, ds_name)
        if ds is None or not chosen:
            return chosen, f"Nothing is selected, so nothing was removed. {NOTHING_SELECTED}", *keep_view
        entries = [img for img in ds.images if img["id"] in set(chosen)]
        ds.remove(chosen)
        return ([], f"Removed {len(entries)}: {named(entries)}. **Undo the last remove** brings them back.",
                *dataset_view(ws, ds_name, show_v))

    remove_btn.click(on_remove, [name, selected, show], [selected, selected_md, *view_outputs])

    @refusing(1 + len(view_outputs))
    def on_undo(ds_name, show_v, request: gr.Request):
        ws = sessions.workspace(request)
        ds = _existing(ws, ds_name)
        if ds is None:
            return "Pick a dataset first.", *keep_view
        try:
            restored = ds.undo_remove()
        except UserError as exc:
            return as_text(str(exc)), *keep_view
        return f"Put back {len(restored)}: {named(restored)}.", *dataset_view(ws, ds_name, show_v)

    undo_btn.click(on_undo, [name, show], [selected_md, *view_outputs])

    @refusing(1 + len(view_outputs))
    def on_recrop(ds_name, size_v, crop_v, patches_v, layout_v, show_v, request: gr.Request):
        ws = sessions.workspace(request)
        n = Dataset.open(ws, ds_name).recrop(CropSettings(size=int(size_v), crop=crop_v, patches=int(patches_v), patch_layout=layout_v))
        return f"Re-cropped from the originals: {n} images.", *dataset_view(ws, ds_name, show_v)

    recrop_btn.click(on_recrop, [name, size, crop, patches, layout, show], [status, *view_outputs])

    @refusing(2, note=1)
    def on_preview(ds_name, policy_v, request: gr.Request):
        ws = sessions.workspace(request)
        from PIL import Image

        from studio.data.augment import augment_preview

        ds = Dataset.open(ws, ds_name)
        if not ds.images:
            raise UserError("The dataset is empty: import images first.")
        step = max(1, len(ds.images) // 4)
        images = [Image.open(ds.image_path(img)).convert("RGB") for img in ds.images[::step][:4]]
        return augment_preview(images, policy=",".join(policy_v) or "none", per_image=4), gr.update()

    preview_btn.click(on_preview, [name, policy], [preview, status])

    @refusing(2, note=1)
    def on_export(ds_name, request: gr.Request):
        ws = sessions.workspace(request)
        return (gr.update(value=str(Dataset.open(ws, ds_name).export_zip(ws.exports / f"{ds_name}.zip")), visible=True),
                gr.update())

    export_btn.click(on_export, [name], [export_file, status])


# -- From the Hub: N images per class of an image dataset on the Hugging Face Hub (studio.data.hub) ------------------
def _hub_panel(multi_user: bool) -> SimpleNamespace:
    """The panel's components, built where it shows: under the upload's Import button."""
    with gr.Accordion("From the Hub: art movements from WikiArt, or classes of any image dataset", open=False,
                      elem_id="hub-panel") as panel:
        gr.Markdown("Pick classes and how many of each: only the parts of the collection that hold them are "
                    "downloaded. They go into the dataset named above, with its size and crop, like an upload.")
        with gr.Row():
            repo = gr.Textbox(hub.WIKIART, label="Hugging Face dataset" + ("" if multi_user else " or local folder"),
                              info="owner/name on the Hub" + ("" if multi_user else ", or a folder in its layout "
                                                           "(data/*.parquet and README.md)"), elem_id="hub-repo", scale=3)
            load = gr.Button("Read its classes", elem_id="hub-load", scale=1, size="sm")
        about = gr.Markdown(elem_id="hub-licence")
        with gr.Row():
            column = gr.Dropdown(["style"], value="style", label="Label column", elem_id="hub-column", scale=1)
            classes = gr.Dropdown([], value=[], multiselect=True, filterable=True, label="Classes (type to search)",
                                  elem_id="hub-classes", scale=3)
        with gr.Row():
            per_class = gr.Number(100, precision=0, minimum=1, maximum=limits.MAX_IMPORT_FILES, label="Images per class",
                                  elem_id="hub-per-class")
            seed = gr.Number(0, precision=0, label="Seed", elem_id="hub-seed",
                             info="Another seed picks other paintings, never more downloads.")
        with gr.Row():
            preview = gr.Button("Preview the first picks", elem_id="hub-preview")
            start = gr.Button("Import from the Hub", variant="primary", elem_id="hub-import")
        picks = gr.Gallery(label="First picks", columns=8, height=170, allow_preview=False, object_fit="cover",
                           elem_id="hub-preview-gallery")
        report = gr.Markdown(elem_id="hub-report")
    return SimpleNamespace(panel=panel, repo=repo, load=load, about=about, column=column, classes=classes,
                           per_class=per_class, seed=seed, preview=preview, start=start, picks=picks, report=report)


def _streamed(work: Callable[[Callable[[str], None]], Any]) -> Iterator[tuple[str, Any]]:
    """Run `work(say)` in a thread of its own, yielding ("progress", line) as it says them, then ("done", result);
    its error is raised here. A long download then never freezes the page: the handler yields each line."""
    lines: queue.Queue = queue.Queue()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = work(lines.put)
        except BaseException as exc:  # handed to the handler, which says it
            box["error"] = exc
        finally:
            lines.put(None)

    threading.Thread(target=run, daemon=True, name="hub-import").start()
    while (line := lines.get()) is not None:
        yield "progress", line
    if "error" in box:
        raise box["error"]
    yield "done", box["result"]


def _hub_request(repo: str, column: str | None, classes: list[str] | None, per_class, seed) -> hub.HubRequest:
    if not classes:
        raise UserError("Choose one or more classes first (press Read its classes to list them).")
    try:
        n = int(per_class)
    except (TypeError, ValueError):
        raise UserError("Say how many images of each class to import.") from None
    return hub.HubRequest(repo or hub.WIKIART, column or None, tuple(classes), n, "train", int(seed or 0))


def _wire_hub_panel(ui: SimpleNamespace, sessions: Sessions, *, name, crop_inputs: list, show, report,
                    view_outputs: list) -> None:
    allow_local = not sessions.multi_user

    @refusing(3, note=0)
    def on_load(repo, column_v, chosen, request: gr.Request):
        listing = hub.list_classes(repo, column_v or None, allow_local=allow_local)
        kept = [c for c in chosen or [] if c in listing.classes]
        about = (f"**{as_text(listing.repo)}**: {len(listing.classes)} classes in *{as_text(listing.column)}* "
                 f"(label columns: {as_text(', '.join(listing.columns))}). Licence, as its card states it: "
                 f"**{as_text(listing.licence)}**.")
        return (about, gr.update(choices=listing.columns, value=listing.column),
                gr.update(choices=listing.classes, value=kept))

    loaded = [ui.about, ui.column, ui.classes]
    ui.load.click(on_load, [ui.repo, gr.State(None), ui.classes], loaded)
    ui.repo.submit(on_load, [ui.repo, gr.State(None), ui.classes], loaded)
    ui.column.input(on_load, [ui.repo, ui.column, ui.classes], loaded)
    ui.panel.expand(on_load, [ui.repo, ui.column, ui.classes], loaded)

    def refused(exc: UserError, n: int, at: int) -> tuple:
        text = as_text(str(exc))
        gr.Warning(text)
        out = [gr.update() for _ in range(n)]
        out[at] = text
        return tuple(out)

    def on_preview(ds_name, repo, column_v, chosen, per_class, seed, request: gr.Request):
        ws = sessions.workspace(request)
        try:
            if not ds_name:
                raise UserError("Type a name for the dataset first: the picks are kept with it for the import.")
            req = _hub_request(repo, column_v, chosen, per_class, seed)
            for kind, value in _streamed(lambda say: hub.preview_picks(ws, ds_name, req, allow_local=allow_local,
                                                                        on_progress=say)):
                if kind == "progress":
                    yield gr.update(), as_text(value)
                else:
                    thumbs, stats = value
                    yield (thumbs, f"The first {len(thumbs)} picks, kept for the import (read "
                                   f"{size_text(stats.bytes)} in {stats.seconds:.1f} s).")
        except UserError as exc:
            yield refused(exc, 2, 1)

    # One fetch at a time: a preview and an import of one dataset share its .hub/ folder (the staged rows).
    one_fetch = {"concurrency_limit": 1, "concurrency_id": "hub-fetch"}
    ui.preview.click(on_preview, [name, ui.repo, ui.column, ui.classes, ui.per_class, ui.seed], [ui.picks, ui.report],
                     **one_fetch)

    outputs = [ui.report, report, name, *view_outputs]

    def on_import(ds_name, repo, column_v, chosen, per_class, seed, size_v, crop_v, patches_v, layout_v, show_v,
                  request: gr.Request):
        ws = sessions.workspace(request)
        try:
            if not ds_name:
                raise UserError("Type a name for the dataset first.")
            req = _hub_request(repo, column_v, chosen, per_class, seed)
            settings = CropSettings(size=int(size_v), crop=crop_v, patches=int(patches_v), patch_layout=layout_v)
            for kind, value in _streamed(lambda say: hub.import_from_hub(ws, ds_name, req, settings=settings,
                                                                          allow_local=allow_local, on_progress=say)):
                if kind == "progress":
                    yield (as_text(value), *[gr.update() for _ in outputs[1:]])
                    continue
                _, result = value
                rep = result.report
                msg = (f"Imported **{len(rep.imported)}** from {as_text(result.repo)} ({as_text(result.column)})"
                       + (f"; {len(rep.rejected)} rejected, {len(rep.duplicates)} duplicates (listed on the right)"
                          if rep.rejected or rep.duplicates else "") + f". {as_text(result.summary())}")
                msg += "".join(f" {as_text(note)}" for note in [rep.limit_notice, *result.notes] if note)
                yield (msg, _report_rows(rep), gr.update(choices=_names(ws), value=ds_name),
                       *dataset_view(ws, ds_name, show_v))
        except UserError as exc:
            yield refused(exc, len(outputs), 0)

    ui.start.click(on_import, [name, ui.repo, ui.column, ui.classes, ui.per_class, ui.seed, *crop_inputs, show],
                   outputs, **one_fetch)

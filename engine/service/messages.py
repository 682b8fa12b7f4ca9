"""The engine protocol's messages: every method's parameters and result, and every event, as
TypedDicts (the exact shapes: engine.service.protocol checks requests against them), and the
method table that says how each method runs. Standard library only, like the protocol.

Methods (params -> result; the TypedDicts below are the exact shapes)
-------------------------------------------------------------------------------
=================  ===================================  ========================================
method             params                               result
=================  ===================================  ========================================
hello              HelloParams                          HelloResult
ping               {}                                   {"pong": true}
status             {}                                   StatusResult
add_folder         AddFolderParams                      {"folder": path, "job": id | null}
remove_folder      {"path"}                             {"folder": path}
scan               {"folders"?: [path]}                 {"job": id}
pause              {}                                   {"paused": true}
resume             {}                                   {"paused": false}
cancel             {"job"}                              {"cancelled": bool}  (false: already over)
search             SearchParams                         {"hits": [SearchHit]}
similar            SimilarParams                        {"hits": [SearchHit]}
failures           {"folder"?: path}                    {"failures": [FailureInfo]}
photo_info         {"path"} or {"image_id"}             PhotoInfo
thumbnail          {"path", "size"?: 16..2048}          ThumbnailResult (a cached JPEG file)
models_list        {}                                   {"models": [ModelInfo]}
use_model          {"key"}                              {"model": ModelInfo}
set_max_patches    {"key", "max_patches": int | null}   {"model": ModelInfo}
download_model     {"key", "use"?: bool}                {"job": id}  (use: switch to it once it is here)
download_size      {"key"}                              {"bytes": int, "files": int}  (asks the hub)
import_model       {"folder", "key"?}                   {"model": ModelInfo}
train_start        TrainStartParams                     {"job": id}
train_accept       {"run"}                              {"model": ModelInfo}
train_discard      {"run"}                              {"discarded": true}
train_pending      {}                                   {"runs": [TrainRun]}
shutdown           {}                                   {"ok": true}, then the engine exits 0
vocab_list         {}                                   VocabListResult
vocab_get          {"name"}                             {"vocab": VocabInfo}
vocab_create       VocabCreateParams                    VocabChangeResult
vocab_update       VocabUpdateParams                    VocabChangeResult
vocab_delete       {"name"}                             {"deleted": name}
vocab_import       VocabImportParams                    VocabChangeResult
vocab_export       VocabExportParams                    {"path", "labels": int}
tag_run            {"vocab"?}                           {"tagged": TagRunReport}
tag_threshold      TagThresholdParams                   TagThresholdResult
tag_answer         TagAnswerParams                      TagAnswerResult
tag_photo          TagPhotoParams                       {"tags": [PhotoTag]}
tag_photos         TagPhotosParams                      TagPhotosResult
tag_counts         {"vocab"?}                           {"counts": [TagCount]}
tag_export_xmp     TagExportXmpParams                   {"job": id}
tag_import_xmp     TagImportXmpParams                   {"job": id}
=================  ===================================  ========================================

Camera RAW files are photos like any other: ``thumbnail`` renders them (the app shows a RAW
through it, at preview size too, since Qt cannot decode RAW files) and ``photo_info`` reads
their metadata. A RAW file with a JPEG (or HEIF) of the same name in the same folder, as
cameras write them in "RAW + JPEG" mode, is one photo in ``search``/``similar`` hits and tag
lists (``tag_photos``, ``tag_counts``): the JPEG, whose ``metadata.twins`` names the RAW.
Unless the hits are limited to RAW types by ``filters.exts``, or ``raw_jpeg_pairs`` is false in
the engine's settings.json, which makes them two photos.

Tagging (engine.tags.vocab, engine.tags.tagging): a vocabulary is a named list of labels, each
with optional synonyms and prompts of its own, plus prompt templates ("a photo of a {}")
whose text vectors are averaged. Every photo gets a probability per label from its stored
vector (no decoding, no re-embedding); a photo carries a label when the probability reaches
the label's threshold, or when the user confirmed it, and never when the user rejected it.
``vocab_create``/``vocab_update``/``vocab_import`` re-tag the library before replying.
``tag_threshold`` with ``"preview": true`` only reports which photos would enter and leave
(for a slider being dragged), with the moved photos as hits (``entered_hits``/``left_hits``,
capped, best first, and ``entered_total``/``left_total``); without it the threshold is saved (``threshold: null`` goes
back to the calibrated/default one). ``tag_answer`` records confirmations/rejections
(``state: "none"`` forgets them), which recalibrate the label's threshold and refine the
label with the confirmed photos' vectors. ``search`` takes ``filters.tags``: only photos
carrying every listed tag; with tags and no text or examples it browses them (the photos
carrying the tags, confirmed for the first tag first, then by the first tag's probability
as ``score``). A vocabulary with ``auto: false`` (the ``Keywords`` one that keyword import
makes) gets no automatic tags: only confirmed answers carry its labels. A label is named by vocabulary and label name (``TagRef``).

``train_start`` fine-tunes the text side of a model (SigLIT: the image tower and every stored
image vector stay as they are) on a tag vocabulary's confirmed tags or on a folder with one
sub-folder per label (that folder must already be in the library, indexed). It runs as a
``train`` job in a child process beside indexing; its ``progress`` events count steps
(``unit`` "steps") and carry the latest training record in ``train`` (``step``, ``loss``,
``val_map``). ``job_done`` carries ``run`` (the candidate's id), ``key`` and ``metrics``
(per-label average precision and recall before/after on held-out photos, and the
general-knowledge check). Nothing is registered until ``train_accept``; ``train_discard``
forgets the candidate; ``cancel`` stops training at once and keeps nothing. Too little
data fails the job with ``training_data`` and a message saying how much is needed.

Keywords other photo managers read (engine.xmp.tags, engine.xmp.keywords): ``tag_export_xmp`` is a job
that writes each photo's tags in force (or only the confirmed ones) as XMP sidecar keywords
(``dc:subject``, plus ``lr:hierarchicalSubject`` ``photosift|vocabulary|label``) and takes
out of the sidecar the labels the user rejected; other keywords are never touched. Only with
``"embed": true`` are the photo files themselves rewritten (JPEG: only their XMP/IPTC
segments); the library follows the new content hash, so nothing is re-embedded and answers
stay. ``tag_import_xmp`` is a job that reads the keywords of indexed photos (sidecars,
embedded XMP, IPTC) and records them as confirmed answers, never overriding an answer given
in photosift; keywords that name no label go into the vocabulary ``Keywords`` (or ``vocab``)
unless ``only_known``. Both report per-file failures in ``job_done`` and never abort on one;
``cancel`` stops them after the file in hand, every file written being complete.

``remove_folder`` and ``use_model`` reply once they are done (they run between
indexing batches, never beside them). ``search`` text may hold ``-word`` and ``-"some words"``
negatives.

``set_max_patches`` chooses a NaFlex model's patch budget per photo (one of its ModelInfo's
``max_patches_choices``; null: the registry's default). Another budget is another image space:
for the active model it works like ``use_model`` (re-embedded in the background, the previous
vectors answering searches meanwhile); for another model it is saved for when it is used.

``use_model`` refuses a model that is not here (``model_not_available``: download or import
it first). When the new model has another image space, the library is re-embedded by a
scan job; until that job ends, ``search`` and ``similar`` are answered with the previous
model's vectors (``status.search_model`` names the model answering), so searching keeps
working with every photo meanwhile. A ``download`` job that fetched a ready ONNX model
folder copies it into the models folder, so the model is here when ``job_done`` comes. The engine also exits (saving its caches) when its stdin closes, so it
never outlives the app.

Events
------
==================  =====  ==================================================================
event               job?   data
==================  =====  ==================================================================
job_started         yes    JobInfo
progress            yes    ProgressData
job_done            yes    JobReport
job_failed          yes    ErrorInfo
pause_state         no     {"paused": bool}
library_changed     no     LibraryChanged: the watcher applied file-system changes
folder_state        no     {"path", "online"}: a watched folder went offline or came back
==================  =====  ==================================================================
"""

from typing import Any, Literal, NotRequired, TypedDict

# -- shapes ------------------------------------------------------------------------------


class ErrorInfo(TypedDict):
    code: str
    message: str


class Request(TypedDict):
    id: int | str
    method: str
    params: NotRequired[dict[str, Any]]


class Reply(TypedDict):
    id: int | str | None
    result: NotRequired[Any]
    error: NotRequired[ErrorInfo]


class Event(TypedDict):
    event: str
    job: NotRequired[str]
    request: NotRequired[int | str]  # progress of a request that is not a job (engine.service.reqprogress)
    data: Any


class Empty(TypedDict):
    pass


class ModelInfo(TypedDict):
    key: str
    name: str
    family: NotRequired[str]
    embed_dim: NotRequired[int]
    size_mb: NotRequired[float | None]
    license: NotRequired[str]
    here: bool  # runnable on this machine without a download
    active: NotRequired[bool]
    max_patches: NotRequired[int]  # NaFlex models: the patch budget in use (Settings.max_patches)
    max_patches_choices: NotRequired[list[int]]  # NaFlex models: budgets the app may offer
    recommended: NotRequired[bool]  # the real model to offer a new user first (registry's mark)


class HelloParams(TypedDict):
    protocol: int
    client: NotRequired[str]  # e.g. "photosift-app 0.1.0", for the engine's log


class HelloResult(TypedDict):
    engine_version: str
    protocol: int
    pid: int
    data_dir: str
    model: ModelInfo | None
    model_error: str | None  # why the configured model is unusable, else None
    library_error: str | None  # why the library could not be opened, else None


class FolderInfo(TypedDict):
    id: int
    path: str
    online: bool
    poll: bool
    last_scan: float | None
    files: int
    failures: int
    watched: bool


class ProgressData(TypedDict):
    done: int
    total: int
    unit: Literal["files", "bytes", "steps", "photos"]
    embedded: int
    reused: int  # moved, copied or unchanged content: vector reused, nothing decoded
    failed: int
    rate: float  # units per second, time spent paused not counted
    eta_s: float | None
    elapsed_s: float
    current: str | None  # the file in hand
    paused: bool
    train: NotRequired[dict[str, Any]]  # train jobs: the latest {"step", "loss", "val_map"?}


class JobInfo(TypedDict):
    job: str
    kind: Literal["scan", "watch", "download", "train", "tag_export_xmp", "tag_import_xmp"]
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    folders: list[str]  # what a scan covers ([] = all folders)
    model: NotRequired[str]  # what a download fetches
    progress: NotRequired[ProgressData | None]


class StatusResult(TypedDict):
    folders: list[FolderInfo]
    files: int
    images: int
    failures: int
    offline_folders: int
    vectors: dict[str, int]  # per image space
    model: dict[str, Any]  # ModelInfo, or {"error": message}
    # the model that answers searches: the active one, or the previous one while a model
    # switch re-embeds the library (added in protocol 1; older engines leave it out)
    search_model: NotRequired[str | None]
    paused: bool
    jobs: list[JobInfo]


class AddFolderParams(TypedDict):
    path: str
    poll: NotRequired[bool]  # watch by polling (network shares) instead of OS events
    scan: NotRequired[bool]  # start indexing it now (default true)


class AddFolderResult(TypedDict):
    folder: str
    job: str | None


class PathParams(TypedDict):
    path: str


class ScanParams(TypedDict):
    folders: NotRequired[list[str]]


class JobParams(TypedDict):
    job: str


class JobStarted(TypedDict):
    job: str


class TagRef(TypedDict):
    vocab: str
    label: str


class FiltersParams(TypedDict):
    folders: NotRequired[list[str]]
    date_from: NotRequired[str | None]  # ISO date, inclusive
    date_to: NotRequired[str | None]  # ISO date, inclusive
    exts: NotRequired[list[str]]
    tags: NotRequired[list[TagRef]]  # only photos carrying all of these tags


class SearchParams(TypedDict):
    text: NotRequired[str]
    like: NotRequired[list[str | int]]  # example photos: paths or image ids
    negatives: NotRequired[list[str]]
    filters: NotRequired[FiltersParams]
    k: NotRequired[int]  # 1..1000, default 50
    text_weight: NotRequired[float]
    like_weight: NotRequired[float]
    negative_weight: NotRequired[float]


class SimilarParams(TypedDict):
    photo: str | int  # a path (indexed or not) or an image id
    text: NotRequired[str]
    negatives: NotRequired[list[str]]
    filters: NotRequired[FiltersParams]
    k: NotRequired[int]


class PhotoMetadata(TypedDict):
    image_id: int
    path: str
    online: bool
    width: int | None
    height: int | None
    format: str | None
    taken_at: str | None
    camera_make: str | None
    camera_model: str | None
    size: int | None
    other_paths: list[str]
    # The other half of a RAW + JPEG pair (same folder and name): the RAW files of a JPEG (which
    # stands for the pair in results and tag lists), or the JPEG of a RAW shown on its own.
    twins: list[str]


class SearchHit(TypedDict):
    image_id: int
    score: float
    path: str
    online: bool
    metadata: PhotoMetadata


class SearchResult(TypedDict):
    hits: list[SearchHit]


class FailuresParams(TypedDict):
    folder: NotRequired[str]


class FailureInfo(TypedDict):
    path: str
    reason: str
    at: float


class PhotoInfoParams(TypedDict):
    path: NotRequired[str]
    image_id: NotRequired[int]


class PhotoInfo(PhotoMetadata):
    gps: list[float] | None  # [latitude, longitude]
    keywords: list[str]
    orientation: int | None
    tags: list[dict[str, Any]]  # confirmed/proposed tags: filled in by the tagging feature


class ThumbnailParams(TypedDict):
    path: str
    size: NotRequired[int]  # longest side in pixels, default 256


class ThumbnailResult(TypedDict):
    path: str  # a JPEG under <data_dir>/thumbs, made once per file version and size
    width: int
    height: int


class MaxPatchesParams(TypedDict):
    key: str
    max_patches: int | None  # one of ModelInfo.max_patches_choices; null: the model's default


class ModelKeyParams(TypedDict):
    key: str


class ImportModelParams(TypedDict):
    folder: str
    key: NotRequired[str]  # the registry entry a hub folder is (else matched by its name)


class DownloadModelParams(TypedDict):
    key: str
    use: NotRequired[bool]  # switch to the model (re-embedding the library) once it is here


class JobReport(TypedDict):
    kind: str
    cancelled: bool
    total: NotRequired[int]
    embedded: NotRequired[int]
    reused: NotRequired[int]
    unchanged: NotRequired[int]
    failed: NotRequired[int]
    removed: NotRequired[int]
    moved: NotRequired[int]
    offline: NotRequired[list[str]]
    elapsed_s: NotRequired[float]
    failures: NotRequired[list[dict[str, str]]]  # first 100 of {path, reason}
    folder: NotRequired[str]  # download: the model folder
    model: NotRequired[ModelInfo]  # download with "use": the model now in use
    run: NotRequired[str]  # train: the candidate to accept or discard
    key: NotRequired[str]  # train: the candidate model's key
    metrics: NotRequired[dict[str, Any]]  # train: before/after numbers
    # tag_export_xmp: sidecars written (or already up to date), photo files rewritten
    sidecars: NotRequired[int]  # (and `embedded`: photo files rewritten)
    raw_not_embedded: NotRequired[int]  # camera RAW files: sidecar only, never written into
    # tag_import_xmp (TagImportReport in engine.xmp.tags)
    with_keywords: NotRequired[int]  # photos that had any keyword
    confirmed: NotRequired[int]  # answers recorded now
    already: NotRequired[int]  # keywords whose tag was confirmed already
    # {path, vocab, label}: a keyword named a tag the user rejected; the answer stays
    kept_rejections: NotRequired[list[dict[str, str]]]
    labels_created: NotRequired[dict[str, list[str]]]  # vocabulary -> new labels
    skipped: NotRequired[list[dict[str, str]]]  # {keyword, reason}: cannot be a label
    problems: NotRequired[list[str]]  # embedded metadata that could not be read
    retag_error: NotRequired[str | None]  # answers saved but not re-tagged (e.g. no model)


class TrainStartParams(TypedDict):
    vocab: NotRequired[str]  # a tag vocabulary (its confirmed and rejected tags) ...
    folders: NotRequired[str]  # ... or a library folder with one sub-folder per label
    base: NotRequired[str]  # model to fine-tune (default: the active one)
    tune: NotRequired[str]  # "last:K" (default last:2) | "lora:R" | "full"
    seed: NotRequired[int]
    max_steps: NotRequired[int]


class TrainRunParams(TypedDict):
    run: str


class TrainRun(TypedDict):
    run: str
    key: str
    name: str
    metrics: dict[str, Any]
    history: NotRequired[list[dict[str, Any]]]  # each validation check: {step, loss?, val_map}


class LibraryChanged(TypedDict):
    indexed: int
    removed: int
    moved: int
    failed: int
    folders: list[str]


# The method table: name -> (params shape, result shape, how it runs).
#   "control": answered on the reading thread at once (never waits behind other work);
#   "quick":   answered from the worker pool;
#   "writer":  serialised with indexing; answered when done;
#   "job":     answered at once with a job id, reports through events.
Runs = Literal["control", "quick", "writer", "job"]
METHODS: dict[str, tuple[type, type, Runs]] = {
    "hello": (HelloParams, HelloResult, "control"),
    "ping": (Empty, dict, "control"),
    "status": (Empty, StatusResult, "quick"),
    "add_folder": (AddFolderParams, AddFolderResult, "quick"),
    "remove_folder": (PathParams, dict, "writer"),
    "scan": (ScanParams, JobStarted, "job"),
    "pause": (Empty, dict, "control"),
    "resume": (Empty, dict, "control"),
    "cancel": (JobParams, dict, "control"),
    "search": (SearchParams, SearchResult, "quick"),
    "similar": (SimilarParams, SearchResult, "quick"),
    "failures": (FailuresParams, dict, "quick"),
    "photo_info": (PhotoInfoParams, PhotoInfo, "quick"),
    "thumbnail": (ThumbnailParams, ThumbnailResult, "quick"),
    "models_list": (Empty, dict, "quick"),
    "use_model": (ModelKeyParams, dict, "writer"),
    "set_max_patches": (MaxPatchesParams, dict, "writer"),
    "download_model": (DownloadModelParams, JobStarted, "job"),
    "download_size": (ModelKeyParams, dict, "quick"),
    "import_model": (ImportModelParams, dict, "quick"),
    "shutdown": (Empty, dict, "control"),
    "train_start": (TrainStartParams, JobStarted, "job"),
    "train_accept": (TrainRunParams, dict, "quick"),
    "train_discard": (TrainRunParams, dict, "quick"),
    "train_pending": (Empty, dict, "quick"),
}

# -- tagging (engine.tags.vocab, engine.tags.tagging) --------------------------------------------------


class LabelSpec(TypedDict):
    name: str
    synonyms: NotRequired[list[str]]  # other names; each gets the templates too
    prompts: NotRequired[list[str]]  # full prompts of its own, used as written
    threshold: NotRequired[float | None]  # a fixed threshold for this label (null: calibrated)


class LabelInfo(TypedDict):
    name: str
    synonyms: list[str]
    prompts: list[str]
    threshold: float  # the threshold in force for the active model
    threshold_source: Literal["default", "calibrated", "user"]
    confirmed: int
    rejected: int
    tagged: int  # photos carrying the label now (confirmed + automatic - rejected)


class VocabSummary(TypedDict):
    name: str
    labels: int
    templates: list[str]
    threshold: float | None  # the vocabulary's default threshold (null: the model family's)
    updated_at: float
    auto: bool  # false: its labels are carried only by confirmed answers (no automatic tags)


class VocabInfo(VocabSummary):
    label_list: list[LabelInfo]
    default_threshold: float  # what labels without a calibrated/user threshold use


class VocabListResult(TypedDict):
    vocabularies: list[VocabSummary]
    starters: list[str]  # starter vocabularies that vocab_create {"starter"} can copy


class VocabNameParams(TypedDict):
    name: str


class VocabCreateParams(TypedDict):
    name: str
    labels: NotRequired[list[str | LabelSpec]]
    templates: NotRequired[list[str]]  # each holds "{}" once; default: the built-in ensemble
    threshold: NotRequired[float | None]
    starter: NotRequired[str]  # copy this starter vocabulary (labels, templates)
    auto: NotRequired[bool]  # default true; false: no automatic tags, only confirmed answers


class VocabUpdateParams(TypedDict):
    name: str
    rename: NotRequired[str]  # the vocabulary's new name
    add: NotRequired[list[str | LabelSpec]]
    remove: NotRequired[list[str]]
    rename_labels: NotRequired[dict[str, str]]  # old label name -> new (answers are kept)
    edit: NotRequired[list[LabelSpec]]  # replace synonyms/prompts/threshold of existing labels
    templates: NotRequired[list[str]]
    threshold: NotRequired[float | None]
    auto: NotRequired[bool]  # tag photos automatically (absent: unchanged)


class VocabImportParams(TypedDict):
    path: str  # .json, .csv or .txt (one label per line)
    name: NotRequired[str]  # default: the file's own name (JSON) or its stem
    format: NotRequired[Literal["json", "csv", "txt"]]  # default: from the extension
    replace: NotRequired[bool]  # replace an existing vocabulary of that name (default: error)


class VocabExportParams(TypedDict):
    name: str
    path: str
    format: NotRequired[Literal["json", "csv", "txt"]]


class TagRunReport(TypedDict):
    vocabularies: int
    labels: int
    photos: int
    assigned: int  # automatic tags in force after the run
    added: int
    removed: int
    seconds: float


class VocabChangeResult(TypedDict):
    vocab: VocabInfo
    tagged: TagRunReport


class TagRunParams(TypedDict):
    vocab: NotRequired[str]


class TagThresholdParams(TypedDict):
    vocab: str
    label: str
    threshold: float | None  # 0..1 probability; null: back to the calibrated/default one
    preview: NotRequired[bool]  # only say what would change (default false: save it)


class TagThresholdResult(TypedDict):
    threshold: float
    threshold_source: Literal["default", "calibrated", "user"]
    entered: list[int]  # image ids that gain the tag
    left: list[int]  # image ids that lose it
    tagged: int  # photos carrying the label at this threshold
    # preview only: the moved photos themselves, best score first, at most 500 a side
    # (engine.tags.tagging.PREVIEW_HITS), with how many moved in all
    entered_hits: NotRequired[list["TagHit"]]
    left_hits: NotRequired[list["TagHit"]]
    entered_total: NotRequired[int]
    left_total: NotRequired[int]


class TagAnswerParams(TypedDict):
    vocab: str
    label: str
    photos: list[str | int]  # paths or image ids
    state: Literal["confirmed", "rejected", "none"]  # none: forget the answer


class TagAnswerResult(TypedDict):
    answered: int
    threshold: float  # the label's threshold after recalibration
    threshold_source: Literal["default", "calibrated", "user"]
    entered: list[int]
    left: list[int]


class PhotoTag(TypedDict):
    vocab: str
    label: str
    score: float | None  # the model's probability (null: no vector in this model's space)
    state: Literal["auto", "confirmed", "rejected"]
    threshold: float


class TagPhotoParams(TypedDict):
    photo: str | int
    vocab: NotRequired[str]
    all: NotRequired[bool]  # also labels below threshold (default: only tags in force + rejected)


class TagPhotosParams(TypedDict):
    vocab: str
    label: str
    state: NotRequired[Literal["tagged", "auto", "confirmed", "rejected", "untagged"]]
    k: NotRequired[int]  # 1..1000, default 200
    offset: NotRequired[int]


class TagHit(TypedDict):
    image_id: int
    score: float | None
    state: Literal["auto", "confirmed", "rejected", "none"]
    path: str
    online: bool


class TagPhotosResult(TypedDict):
    hits: list[TagHit]  # best score first
    total: int


class TagCount(TypedDict):
    vocab: str
    label: str
    tagged: int
    auto: int
    confirmed: int
    rejected: int


class TagCountsParams(TypedDict):
    vocab: NotRequired[str]


METHODS.update({
    "vocab_list": (Empty, VocabListResult, "quick"),
    "vocab_get": (VocabNameParams, dict, "quick"),
    "vocab_create": (VocabCreateParams, VocabChangeResult, "writer"),
    "vocab_update": (VocabUpdateParams, VocabChangeResult, "writer"),
    "vocab_delete": (VocabNameParams, dict, "writer"),
    "vocab_import": (VocabImportParams, VocabChangeResult, "writer"),
    "vocab_export": (VocabExportParams, dict, "quick"),
    "tag_run": (TagRunParams, dict, "writer"),
    "tag_threshold": (TagThresholdParams, TagThresholdResult, "quick"),
    "tag_answer": (TagAnswerParams, TagAnswerResult, "writer"),
    "tag_photo": (TagPhotoParams, dict, "quick"),
    "tag_photos": (TagPhotosParams, TagPhotosResult, "quick"),
    "tag_counts": (TagCountsParams, dict, "quick"),
})  # fmt: skip
TagMethod = Literal[
    "vocab_list", "vocab_get", "vocab_create", "vocab_update", "vocab_delete", "vocab_import",
    "vocab_export", "tag_run", "tag_threshold", "tag_answer", "tag_photo", "tag_photos", "tag_counts",
]  # fmt: skip

Method = Literal[
    "hello", "ping", "status", "add_folder", "remove_folder", "scan", "pause", "resume",
    "cancel", "search", "similar", "failures", "photo_info", "thumbnail", "models_list",
    "use_model", "set_max_patches", "download_model", "download_size", "import_model", "shutdown",
    "train_start", "train_accept", "train_discard", "train_pending",
]  # fmt: skip
Method = Literal[Method, TagMethod]  # nested Literals flatten: every method name  # type: ignore[misc]

EVENTS = (
    "job_started", "progress", "job_done", "job_failed", "pause_state", "library_changed",
    "folder_state",
)  # fmt: skip


# -- keywords in XMP/IPTC (engine.xmp.tags) ----------------------------------------------------


class TagExportXmpParams(TypedDict):
    vocab: NotRequired[str]  # only this vocabulary's tags (default: all)
    confirmed_only: NotRequired[bool]  # only confirmed tags (default: automatic ones too)
    embed: NotRequired[bool]  # also rewrite the photo files themselves (default false)


class TagImportXmpParams(TypedDict):
    folders: NotRequired[list[str]]  # only photos under these library folders (default: all)
    vocab: NotRequired[str]  # match only its labels; new keywords go to it (default: "Keywords")
    only_known: NotRequired[bool]  # create no labels (default false)


METHODS.update({
    "tag_export_xmp": (TagExportXmpParams, JobStarted, "job"),
    "tag_import_xmp": (TagImportXmpParams, JobStarted, "job"),
})  # fmt: skip
XmpMethod = Literal["tag_export_xmp", "tag_import_xmp"]
Method = Literal[Method, XmpMethod]  # type: ignore[misc]

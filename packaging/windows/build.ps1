# Build the Windows installer: a one-folder PyInstaller bundle, wrapped by Inno Setup into
# photosift-<version>-windows-x64-setup.exe (Start-menu entry, optional desktop icon, uninstaller).
#
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1 [-Variant lean|train] [-Python py]
#
# Needs: Python 3.11+ (python.org or actions/setup-python), the MSVC build tools (hnswlib builds
# from source), Inno Setup 6 (ISCC.exe on PATH or in its default folder; `choco install innosetup`).
# Output (git-ignored): packaging\dist\windows-<variant>\photosift\ and packaging\dist\*-setup.exe
param(
    [ValidateSet("lean", "train")][string]$Variant = "lean",
    [string]$Python = "python",
    [switch]$SkipInstaller
)
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..\..")
$Root = (Get-Location).Path

# A simple function (no param block), so that arguments like -m reach the program untouched.
function Invoke-Checked {
    $Exe, $Rest = $args
    & $Exe @Rest
    if ($LASTEXITCODE -ne 0) { throw "$Exe $($Rest -join ' ') failed with exit code $LASTEXITCODE" }
}

$Version = (Select-String -Path "app\__init__.py" -Pattern '^__version__ = "(.+)"$').Matches[0].Groups[1].Value
$Suffix = if ($Variant -eq "train") { "-train" } else { "" }
$Venv = "packaging\.build-venv$Suffix"
$Py = "$Venv\Scripts\python.exe"

# -- 1. the build venv: the project's own dependencies, no torch unless -Variant train
if (-not (Test-Path $Py)) { Invoke-Checked $Python -m venv $Venv }
Invoke-Checked $Py -m pip install -q --upgrade pip
if ($Variant -eq "lean") {
    Invoke-Checked $Py -m pip install -q -c constraints.txt ".[gui]" -r packaging\requirements-build.txt
} else {
    # constraints.txt pins the Linux dev venv's CUDA torch stack; take the CPU wheel instead.
    $Cons = "$Venv\constraints-train.txt"
    Get-Content constraints.txt | Where-Object { $_ -notmatch '^(torch|torchvision|triton|nvidia-|cuda-)' } |
        Set-Content $Cons
    $TorchSpec = if ($env:TORCH_SPEC) { $env:TORCH_SPEC } else { "torch==2.13.0" }
    $TorchIndex = if ($env:TORCH_INDEX_URL) { $env:TORCH_INDEX_URL } else { "https://download.pytorch.org/whl/cpu" }
    # torch and torchvision as a matched pair from one index: open_clip imports torchvision, and
    # a torchvision built for another torch fails at import.
    Invoke-Checked $Py -m pip install -q --index-url $TorchIndex $TorchSpec torchvision
    $TorchVersion = (& $Py -c "import torch; print(torch.__version__.split('+')[0])").Trim()
    $VisionVersion = (& $Py -c "import torchvision; print(torchvision.__version__.split('+')[0])").Trim()
    Add-Content $Cons "torch==$TorchVersion"
    Add-Content $Cons "torchvision==$VisionVersion"
    Invoke-Checked $Py -m pip install -q -c $Cons ".[gui,train]" -r packaging\requirements-build.txt
    Invoke-Checked $Py -c "import open_clip"  # the training variant exists to run it
}

# -- 2. freeze: photosift.exe (windowed) + photosift-cli.exe (console), one _internal\
$env:PHOTOSIFT_VARIANT = $Variant
$Dist = "packaging\dist\windows-$Variant"
Invoke-Checked "$Venv\Scripts\pyinstaller.exe" --noconfirm --clean --log-level WARN `
    --distpath $Dist --workpath "packaging\build\windows-$Variant" packaging\photosift.spec
if (($Variant -eq "lean") -and (Test-Path "$Dist\photosift\_internal\torch")) { throw "torch ended up in the lean bundle" }
$Size = (Get-ChildItem -Recurse -File "$Dist\photosift" | Measure-Object -Sum Length).Sum / 1MB
Write-Host ("bundle {0}\photosift: {1:N1} MB" -f $Dist, $Size)
if ($SkipInstaller) { exit 0 }

# -- 3. the installer
$Iscc = (Get-Command iscc.exe -ErrorAction SilentlyContinue)
$Iscc = if ($Iscc) { $Iscc.Source } else { Join-Path ${env:ProgramFiles(x86)} "Inno Setup 6\ISCC.exe" }
if (-not (Test-Path $Iscc)) { throw "Inno Setup 6 not found (choco install innosetup)" }
Invoke-Checked $Iscc /Q "/DAppVersion=$Version" "/DSourceDir=$Root\$Dist\photosift" `
    "/DOutputDir=$Root\packaging\dist" "/DIconFile=$Root\resources\icons\photosift.ico" `
    "/DVariantSuffix=$Suffix" packaging\windows\photosift.iss
Get-ChildItem "packaging\dist\photosift-$Version-windows-x64$Suffix-setup.exe" | ForEach-Object {
    Write-Host ("installer {0}: {1:N1} MB" -f $_.FullName, ($_.Length / 1MB))
}

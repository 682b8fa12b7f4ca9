; Inno Setup 6 script: the photosift installer for Windows (x64).
; Built by packaging\windows\build.ps1, which passes the defines below; by hand:
;   ISCC.exe /DAppVersion=0.1.0 /DSourceDir=...\packaging\dist\windows-lean\photosift packaging\windows\photosift.iss
;
; Installs per user by default (no admin prompt; {autopf} = %LOCALAPPDATA%\Programs), or for
; all users when the user picks that in the dialog. Start-menu entry, optional desktop icon,
; an uninstaller in Settings > Apps. Uninstalling removes the program folder only: the library
; (%LOCALAPPDATA%\photosift: index, thumbnails, downloaded models, settings) stays, so a
; reinstall finds everything, and the user's photos are never touched.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef SourceDir
  #define SourceDir "..\dist\windows-lean\photosift"
#endif
#ifndef OutputDir
  #define OutputDir "..\dist"
#endif
#ifndef IconFile
  #define IconFile "..\..\resources\icons\photosift.ico"
#endif
#ifndef VariantSuffix
  #define VariantSuffix ""
#endif

[Setup]
; AppId identifies the app to upgrades and the uninstaller: never change it.
AppId={{6B1E3C52-6A0D-4C1B-9F4E-5D2A7C8E9B10}
AppName=photosift
AppVersion={#AppVersion}
AppVerName=photosift {#AppVersion}
AppPublisher=photosift
AppComments=Search and tag your photos on this computer
DefaultDirName={autopf}\photosift
DefaultGroupName=photosift
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir={#OutputDir}
OutputBaseFilename=photosift-{#AppVersion}-windows-x64{#VariantSuffix}-setup
SetupIconFile={#IconFile}
UninstallDisplayIcon={app}\photosift.exe
UninstallDisplayName=photosift
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
; Close a running photosift (window and engine) before files are replaced or removed.
CloseApplications=yes
RestartApplications=no

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
; The whole one-folder bundle: photosift.exe, photosift-cli.exe and _internal\.
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\photosift"; Filename: "{app}\photosift.exe"; Comment: "Search your photos"
Name: "{group}\Uninstall photosift"; Filename: "{uninstallexe}"
Name: "{autodesktop}\photosift"; Filename: "{app}\photosift.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\photosift.exe"; Description: "{cm:LaunchProgram,photosift}"; Flags: nowait postinstall skipifsilent

; No [UninstallDelete] and no [Code] that touches {localappdata}\photosift: the uninstaller
; removes exactly the files listed above, which is the program and nothing of the user's.

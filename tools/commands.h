// The cohfs subcommands. main.cc parses nothing but the subcommand name; each
// command parses its own flags and prints its own --help.
#pragma once

namespace cohfs {

int KeygenCommand(int argc, char** argv);
int FormatCommand(int argc, char** argv);
int ServeCommand(int argc, char** argv);
int MountCommand(int argc, char** argv);
int FsckCommand(int argc, char** argv);
int StatsCommand(int argc, char** argv);
int StatusCommand(int argc, char** argv);
// mount(8)'s helper: the binary run as mount.cohfs (tools/mount_helper.cc).
int MountHelperCommand(int argc, char** argv);

}  // namespace cohfs

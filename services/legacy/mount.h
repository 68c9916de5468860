/* services/legacy/mount.h - the legacy backend as a Keel service. */
#ifndef LEGACY_MOUNT_H
#define LEGACY_MOUNT_H

#include <keel/keel.h>

extern const keel_service legacy_service;

#endif

//! [`NacStore`] in this process: bounded maps, each entry until its own
//! time. 802.1X asks once per authentication, not per request, so a lock
//! held for a map operation is cheap here.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Fingerprint, NacStore, StoreError};
use crate::device::DeviceIdentity;
use crate::nac::{CertKey, NasSession};

/// Sessions one device may have at once (ports and access points).
const MAX_SESSIONS_PER_DEVICE: usize = 16;

/// See the module docs.
pub struct MemoryNac {
    capacity: usize,
    devices: Mutex<HashMap<CertKey, (DeviceIdentity, i64)>>,
    sessions: Mutex<HashMap<Fingerprint, Vec<(NasSession, i64)>>>,
}

impl MemoryNac {
    /// At most `capacity` devices and as many devices with sessions.
    pub fn new(capacity: usize) -> MemoryNac {
        MemoryNac {
            capacity: capacity.max(1),
            devices: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn learn_now(&self, key: &CertKey, device: &DeviceIdentity, until: i64, now: i64) {
        let mut devices = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        if devices.len() >= self.capacity && !devices.contains_key(key) {
            devices.retain(|_, (_, u)| *u > now);
            // Still full of live entries: the one closest to its end goes.
            if devices.len() >= self.capacity {
                if let Some(oldest) = devices
                    .iter()
                    .min_by_key(|(_, (_, u))| *u)
                    .map(|(k, _)| k.clone())
                {
                    devices.remove(&oldest);
                }
            }
        }
        devices.insert(key.clone(), (device.clone(), until));
    }
}

fn now() -> i64 {
    crate::decision::unix_now()
}

impl NacStore for MemoryNac {
    async fn learn(
        &self,
        key: &CertKey,
        device: &DeviceIdentity,
        until: i64,
    ) -> Result<(), StoreError> {
        self.learn_now(key, device, until, now());
        Ok(())
    }

    async fn device(&self, key: &CertKey) -> Result<Option<DeviceIdentity>, StoreError> {
        let devices = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        Ok(devices
            .get(key)
            .filter(|(_, until)| *until > now())
            .map(|(device, _)| device.clone()))
    }

    async fn put_session(
        &self,
        fingerprint: &Fingerprint,
        session: NasSession,
        until: i64,
    ) -> Result<(), StoreError> {
        let now = now();
        let mut all = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if all.len() >= self.capacity && !all.contains_key(fingerprint) {
            all.retain(|_, list| {
                list.retain(|(_, u)| *u > now);
                !list.is_empty()
            });
            if all.len() >= self.capacity {
                return Err(StoreError::Unavailable(
                    "the session memory is full".to_string(),
                ));
            }
        }
        let list = all.entry(*fingerprint).or_default();
        list.retain(|(s, u)| *u > now && !s.same(&session));
        if list.len() >= MAX_SESSIONS_PER_DEVICE {
            list.remove(0);
        }
        list.push((session, until));
        Ok(())
    }

    async fn end_session(
        &self,
        fingerprint: &Fingerprint,
        session: &NasSession,
    ) -> Result<(), StoreError> {
        let mut all = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = all.get_mut(fingerprint) {
            list.retain(|(s, _)| !s.same(session));
            if list.is_empty() {
                all.remove(fingerprint);
            }
        }
        Ok(())
    }

    async fn sessions(
        &self,
        fingerprint: &Fingerprint,
        now: i64,
    ) -> Result<Vec<NasSession>, StoreError> {
        let all = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        Ok(all
            .get(fingerprint)
            .map(|list| {
                list.iter()
                    .filter(|(_, u)| *u > now)
                    .map(|(s, _)| s.clone())
                    .collect()
            })
            .unwrap_or_default())
    }
}

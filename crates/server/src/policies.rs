//! The vault policies as the service shows and changes them: the shared
//! [`PolicySpec`] and [`PolicyView`] converted by the engine's
//! `policy_spec`, stored in the vault's journal, and assigned to items.

use crate::alerts::Cause;
use crate::db::now;
use crate::error::{Error, Result};
use crate::state::State;

pub use coffer_api_types::{
    MonthlyRules, PolicySpec, PolicyView, RetentionRules, WeeklyRules, YearlyRules,
};

fn policy_view(
    p: &coffer_engine::policy::Policy,
    state: &coffer_engine::journal::VaultState,
) -> PolicyView {
    coffer_engine::policy_spec::view(p, state, now())
}

pub(crate) fn to_policy(name: &str, spec: &PolicySpec) -> Result<coffer_engine::policy::Policy> {
    coffer_engine::policy_spec::to_policy(name, spec)
        .map_err(|e| Error::invalid(e.field, e.message))
}

impl State {
    pub fn policies(&self, vault: &str) -> Result<Vec<PolicyView>> {
        let state = self.open_vault(vault)?.state()?;
        Ok(state
            .policies
            .values()
            .map(|p| policy_view(p, &state))
            .collect())
    }

    /// Creates or replaces a policy in the vault's journal. A shorter
    /// retention than before raises the security alert.
    pub fn set_policy(
        &self,
        vault: &str,
        name: &str,
        spec: &PolicySpec,
        by: &str,
    ) -> Result<PolicyView> {
        let policy = to_policy(name, spec)?;
        let v = self.open_vault(vault)?;
        let before = v.state()?;
        let shortened = before
            .policies
            .get(name)
            .and_then(|old| policy.retention.shortening_from(&old.retention));
        coffer_engine::changes::set_policy(&v, policy)?;
        self.policies_changed(vault);
        if let Some(why) = shortened {
            self.raise_alert(
                Cause::RetentionShortened,
                Some(vault),
                None,
                &format!("{by} shortened the retention of policy {name} in vault {vault}: {why}"),
                None,
            )?;
        }
        let state = v.state()?;
        state
            .policies
            .get(name)
            .map(|p| policy_view(p, &state))
            .ok_or_else(|| Error::Internal(format!("policy {name} not found after it was set")))
    }

    pub fn delete_policy(&self, vault: &str, name: &str) -> Result<()> {
        let v = self.open_vault(vault)?;
        coffer_engine::changes::delete_policy(&v, name)?;
        self.policies_changed(vault);
        Ok(())
    }

    /// Assigns a policy to an item. A move to a shorter retention raises
    /// the security alert.
    pub fn assign_policy(&self, item: &str, policy: &str, by: &str) -> Result<()> {
        let it = self.item(item)?;
        let v = self.open_vault(&it.vault)?;
        let state = v.state()?;
        let shortened = state.policies.get(policy).and_then(|new| {
            new.retention
                .shortening_from(&state.policy_of(item).retention)
        });
        coffer_engine::changes::assign(&v, policy, item).map_err(|e| match e {
            coffer_engine::Error::Invalid(m) if m.starts_with("no policy") => {
                Error::invalid("policy", m)
            }
            e => Error::Engine(e),
        })?;
        self.policies_changed(&it.vault);
        if let Some(why) = shortened {
            self.raise_alert(
                Cause::RetentionShortened,
                Some(&it.vault),
                Some(item),
                &format!(
                    "{by} moved item {item} to policy {policy}, with a shorter retention: {why}"
                ),
                None,
            )?;
        }
        Ok(())
    }
}

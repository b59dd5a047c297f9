# Copyright 2026 The cinder-devloop authors.
# All Rights Reserved.
#
#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.

"""Policies of the os-cluster-manage API (``cluster_manage:*``).

Upstream's ``cinder/policies/__init__.py`` does not know this module, so
:func:`register_rules` registers the rules on the running enforcer; it is
called by :mod:`cinder.cluster_manage.api` before every check.
"""

from oslo_policy import policy

from cinder.policies import base


CREATE_POLICY = 'cluster_manage:create'
GET_POLICY = 'cluster_manage:get'
GET_ALL_POLICY = 'cluster_manage:get_all'
UPDATE_POLICY = 'cluster_manage:update'
DELETE_POLICY = 'cluster_manage:delete'
GET_METADATA_POLICY = 'cluster_manage:get_metadata'
UPDATE_METADATA_POLICY = 'cluster_manage:update_metadata'
DELETE_METADATA_POLICY = 'cluster_manage:delete_metadata'

_COLLECTION = '/os-cluster-manage'
_MEMBER = _COLLECTION + '/{cluster_id}'
_METADATA = _MEMBER + '/metadata'
_METADATA_KEY = _METADATA + '/{key}'


cluster_manage_policies = [
    policy.DocumentedRuleDefault(
        name=CREATE_POLICY,
        check_str=base.RULE_ADMIN_API,
        description="Create a managed cluster.",
        operations=[{'method': 'POST', 'path': _COLLECTION}]),
    policy.DocumentedRuleDefault(
        name=GET_ALL_POLICY,
        check_str=base.RULE_ADMIN_API,
        description="List managed clusters.",
        operations=[{'method': 'GET', 'path': _COLLECTION}]),
    policy.DocumentedRuleDefault(
        name=GET_POLICY,
        check_str=base.RULE_ADMIN_API,
        description="Show a managed cluster.",
        operations=[{'method': 'GET', 'path': _MEMBER}]),
    policy.DocumentedRuleDefault(
        name=UPDATE_POLICY,
        check_str=base.RULE_ADMIN_API,
        description="Update the name or replace the metadata of a managed "
                    "cluster.",
        operations=[{'method': 'PUT', 'path': _MEMBER}]),
    policy.DocumentedRuleDefault(
        name=DELETE_POLICY,
        check_str=base.RULE_ADMIN_API,
        description="Delete a managed cluster.",
        operations=[{'method': 'DELETE', 'path': _MEMBER}]),
    policy.DocumentedRuleDefault(
        name=GET_METADATA_POLICY,
        check_str=base.RULE_ADMIN_API,
        description="Show the metadata of a managed cluster, or one key.",
        operations=[{'method': 'GET', 'path': _METADATA},
                    {'method': 'GET', 'path': _METADATA_KEY}]),
    policy.DocumentedRuleDefault(
        name=UPDATE_METADATA_POLICY,
        check_str=base.RULE_ADMIN_API,
        description="Merge, replace or set the metadata of a managed "
                    "cluster.",
        operations=[{'method': 'POST', 'path': _METADATA},
                    {'method': 'PUT', 'path': _METADATA},
                    {'method': 'PUT', 'path': _METADATA_KEY}]),
    policy.DocumentedRuleDefault(
        name=DELETE_METADATA_POLICY,
        check_str=base.RULE_ADMIN_API,
        description="Delete one metadata key of a managed cluster.",
        operations=[{'method': 'DELETE', 'path': _METADATA_KEY}]),
]


def list_rules():
    return cluster_manage_policies


def register_rules(enforcer):
    """Register the rules ``enforcer`` does not know yet.

    ``register_defaults`` raises DuplicatePolicyError for a name that is
    already registered, hence the guard; the rules take effect at once, even
    on an enforcer that has already loaded its policy file.
    """
    missing = [rule for rule in list_rules()
               if rule.name not in enforcer.registered_rules]
    if missing:
        enforcer.register_defaults(missing)

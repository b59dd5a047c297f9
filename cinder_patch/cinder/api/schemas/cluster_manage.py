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

"""Schemas for the os-cluster-manage API (cluster_manage extension)."""

import copy

from cinder.api.validation import parameter_types


# A name is 1 to 255 characters, not only blanks; null means "no name".
# NOTE(cluster_manage): 29.0.0's parameter_types.update_name plus the
# pattern, spelled out: Train's parameter_types has no update_name.
name = {
    'type': ['string', 'null'], 'minLength': 1, 'maxLength': 255,
    'pattern': r'\S',
}

# An object of strings: keys of 1 to 255 characters, values up to 255.
metadata = parameter_types.extra_specs

# Exactly one key/value pair, for /metadata/{key}.
metadata_item = copy.deepcopy(parameter_types.extra_specs)
metadata_item.update({'minProperties': 1, 'maxProperties': 1})


create = {
    'type': 'object',
    'properties': {
        'cluster': {
            'type': 'object',
            'properties': {
                'name': name,
                'metadata': metadata,
            },
            'additionalProperties': False,
        },
    },
    'required': ['cluster'],
    'additionalProperties': False,
}


update = {
    'type': 'object',
    'properties': {
        'cluster': {
            'type': 'object',
            'properties': {
                'name': name,
                'metadata': metadata,
            },
            'additionalProperties': False,
            'minProperties': 1,
        },
    },
    'required': ['cluster'],
    'additionalProperties': False,
}


set_metadata = {
    'type': 'object',
    'properties': {
        'metadata': metadata,
    },
    'required': ['metadata'],
    'additionalProperties': False,
}


set_metadata_item = {
    'type': 'object',
    'properties': {
        'meta': metadata_item,
    },
    'required': ['meta'],
    'additionalProperties': False,
}

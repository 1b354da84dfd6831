"""Blender-side scripts (bpy): scenes, Cycles renders, datasets and demos."""
